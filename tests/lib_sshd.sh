# tests/lib_sshd.sh: a real OpenSSH sshd on 127.0.0.1 for the tests that
# talk to devices over SSH (sourced by test_device_ssh.sh, test_faults.sh).
# The caller sets: tmp (a scratch dir holding host_key and authorized_keys),
# SSHD (the daemon's path) and sshd_pids=() (killed by its cleanup).

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_sshd NAME [PORT]: an sshd on PORT (default: a free one); sets
# port_NAME and pid_NAME
start_sshd() {
	local name=$1 port=${2:-}
	[ -n "$port" ] || port=$(free_port)
	cat >"$tmp/sshd_$name.conf" <<CONF
ListenAddress 127.0.0.1
HostKey $tmp/host_key
PidFile $tmp/sshd_$name.pid
AuthorizedKeysFile $tmp/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
LogLevel ERROR
CONF
	"$SSHD" -D -e -f "$tmp/sshd_$name.conf" -p "$port" 2>>"$tmp/sshd_$name.log" &
	local pid=$!
	sshd_pids+=("$pid")
	for _ in $(seq 50); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			eval "port_$name=$port; pid_$name=$pid"
			return 0
		fi
		sleep 0.1
	done
	echo "could not start sshd: $(cat "$tmp/sshd_$name.log")" >&2
	exit 1
}

# kill_sshd NAME: the listener and the per-connection sshd processes it forked
kill_sshd() {
	local pid
	eval "pid=\$pid_$1"
	for c in $(pgrep -P "$pid"); do
		kill -KILL "$c" 2>/dev/null
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}
