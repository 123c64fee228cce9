/*
 * operators/op_emit.h: write and compile a self-contained build dir of the
 * on-device harness (DESIGN.md §4), and keep compiled builds in a cache.
 *
 * A build dir holds, flat in one directory:
 *   - the runtime sources the harness needs: util/ (tl.h and its .c files),
 *     the operators/ runtime (every .c and .h of operators/ except this
 *     emitter) and profiler/bench_main.c. They are embedded in the tailor
 *     binary when it is built (profiler/embed_sources.py generates the
 *     table below), so `tailor build` works from any directory and the hash
 *     of the sources is fixed when tailor is built;
 *   - bench_config.h: the build id, the tool version, the harness's default
 *     --quant and the architecture text, compiled into the harness so that
 *     the binary runs with no argument and can be pushed alone;
 *   - arch.txt: the same architecture text (genome_arch_describe's output,
 *     whose SHA-256 is the genome hash), for people and for --arch;
 *   - Makefile: `make [CC=cc] [CFLAGS='-O3 -march=native']` builds
 *     ./tailor-bench, linking only -lm and -pthread;
 *   - build.json: format "tailor-build", version 1, key, build id, arch hash,
 *     sources hash, compiler, its version, flags, the file list, creation
 *     time; after a successful op_emit_build also the binary's SHA-256;
 *   - build.log after op_emit_build: the compile command and its output.
 *
 * The build key is the SHA-256 of (sources hash, tool version, compiler
 * command, the first line of `compiler --version`, flags, default quant, arch
 * text); the build id compiled into the harness is that key. (A `make` in
 * the dir with another CC or CFLAGS keeps the emitted build id; give the
 * device's toolchain to op_emit_build instead, or -DTAILOR_BUILD_ID=... in
 * CFLAGS.) The cache keeps one dir per key under $TAILOR_CACHE/builds/<key>
 * (else $XDG_CACHE_HOME/tailor/builds, else ~/.cache/tailor/builds). An entry
 * is written in a temporary dir and renamed into place when it compiled, so
 * an entry that exists is complete, and two processes building the same key
 * at once both end with the same entry. A failed compile is kept as
 * builds/<key>.failed (with its build.log) until the next attempt.
 *
 * Compiler and flags are split at white space, with no shell in between and
 * no quoting; they may use letters, digits and _ + - = , . / : @ % only
 * (op_emit_opts_check), so they can be written into the Makefile as they are.
 *
 * This file and emit.c use libc and POSIX only (fork/exec for the compiler),
 * but they run on the host: emit.c is not part of any build dir.
 *
 * Usage:
 *     op_emit_opts o;
 *     op_emit_opts_init(&o);                  // cc, -O3 -march=native, q4_0
 *     o.tool_version = TAILOR_VERSION;
 *     op_emit_result r;
 *     if (op_emit_build(&r, NULL, arch_text, &o, &err) < 0) ...   // NULL: the cache
 *     printf("%s%s\n", r.binary, r.cached ? " (cached)" : "");
 */
#ifndef OP_EMIT_H
#define OP_EMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "tl.h"

#define OP_EMIT_FORMAT "tailor-build"
#define OP_EMIT_VERSION 1
#define OP_EMIT_BINARY "tailor-bench"
#define OP_EMIT_PATH_MAX 4096

typedef struct op_emit_opts {
	const char *cc;           /* compiler command, e.g. "cc", "aarch64-linux-gnu-gcc" */
	const char *cflags;       /* e.g. "-O3 -march=native"                            */
	const char *quant;        /* harness default --quant: "q4_0", "q8_0" or "f32"    */
	const char *tool_version; /* compiled into the harness and recorded; "unknown"  */
} op_emit_opts;

/* cc "cc", cflags "-O3 -march=native", quant "q4_0", tool_version "unknown". */
void op_emit_opts_init(op_emit_opts *o);
/* TL_EUSAGE naming the field when cc or cflags is empty (cc) or holds a
 * character outside the allowed set, or quant is not a known type. */
int op_emit_opts_check(const op_emit_opts *o, tl_err *err);

/* SHA-256 (hex) of the embedded sources: for each file in name order, its
 * name, a NUL, its length in decimal, a NUL, its bytes. */
void op_emit_sources_hash(char hex[65]);

/* The build key (see above). Runs `cc --version` once (fork/exec, no
 * shell); a compiler that cannot be run counts as version "unknown" here (its
 * compile fails later, with a message). */
int op_emit_key(char key[65], const char *arch_text, const op_emit_opts *o, tl_err *err);

/* Write a build dir into `dir` (created, with its parents, if missing; the
 * files above are overwritten, any other file is left alone and a
 * tailor-bench from an earlier build is removed). arch_text may be NULL or
 * empty: then the harness has no architecture compiled in and needs --arch
 * (still enough for tailor-bench --probe). Errors name the file. */
int op_emit_build_dir(const char *dir, const char *arch_text, const op_emit_opts *o,
                      tl_err *err);

typedef struct op_emit_result {
	char dir[OP_EMIT_PATH_MAX];    /* the build dir                            */
	char binary[OP_EMIT_PATH_MAX]; /* dir/tailor-bench                         */
	char log[OP_EMIT_PATH_MAX];    /* the compile log (also after a failure)   */
	char key[65];                  /* build key = build id                     */
	bool cached;                   /* reused: nothing was compiled             */
	double seconds;                /* compile time, 0 when cached              */
} op_emit_result;

/* Emit and compile. dir == NULL: in the cache, reusing a complete entry.
 * dir given: there, reusing it when it already holds a complete build of the
 * same key (build.json's key and binary hash match); a dir that exists, is
 * not empty and holds no build.json of ours is refused (TL_EEXIST). A
 * failed compile is TL_EFAIL with a one-line summary of the compiler's first
 * error and the log's path; out->log is set then too. */
int op_emit_build(op_emit_result *out, const char *dir, const char *arch_text,
                  const op_emit_opts *o, tl_err *err);

/* ---- the embedded sources (generated by profiler/embed_sources.py) ------- */

typedef struct op_emit_source {
	const char *name; /* file name in the build dir, e.g. "model.c" */
	size_t len;       /* bytes                                       */
	const char *data; /* contents                                    */
} op_emit_source;

extern const op_emit_source op_emit_sources[];
extern const size_t op_emit_n_sources;

#endif
