/*
 * tests/tl_test.h: the smallest test harness that does the job. CHECK records
 * a failure (file, line, expression) and goes on, so one run reports every
 * broken property; tl_test_end() returns the exit status (non-zero on any
 * failure) for main to return. No macro here returns or jumps.
 *
 *     int main(void) {
 *         CHECK(1 + 1 == 2);
 *         CHECK_EQ_INT(f(3), 9);
 *         return tl_test_end();
 *     }
 */
#ifndef TL_TEST_H
#define TL_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static int tl_test_failures;
static int tl_test_checks;

static inline void tl_test_fail(const char *file, int line, const char *what)
{
	tl_test_failures++;
	fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what);
}

#define CHECK(cond)                                                  \
	do {                                                             \
		tl_test_checks++;                                            \
		if (!(cond))                                                 \
			tl_test_fail(__FILE__, __LINE__, #cond);                 \
	} while (0)

#define CHECK_MSG(cond, ...)                                         \
	do {                                                             \
		tl_test_checks++;                                            \
		if (!(cond)) {                                               \
			tl_test_fail(__FILE__, __LINE__, #cond);                 \
			fprintf(stderr, "     ");                                \
			fprintf(stderr, __VA_ARGS__);                            \
			fprintf(stderr, "\n");                                   \
		}                                                            \
	} while (0)

#define CHECK_EQ_INT(a, b)                                           \
	do {                                                             \
		long long tl_a_ = (long long)(a), tl_b_ = (long long)(b);    \
		tl_test_checks++;                                            \
		if (tl_a_ != tl_b_) {                                        \
			tl_test_fail(__FILE__, __LINE__, #a " == " #b);          \
			fprintf(stderr, "     %lld != %lld\n", tl_a_, tl_b_);    \
		}                                                            \
	} while (0)

#define CHECK_EQ_STR(a, b)                                           \
	do {                                                             \
		const char *tl_a_ = (a), *tl_b_ = (b);                       \
		tl_test_checks++;                                            \
		if (tl_a_ == NULL || tl_b_ == NULL || strcmp(tl_a_, tl_b_)) { \
			tl_test_fail(__FILE__, __LINE__, #a " == " #b);          \
			fprintf(stderr, "     \"%s\" != \"%s\"\n",               \
			        tl_a_ ? tl_a_ : "(null)", tl_b_ ? tl_b_ : "(null)"); \
		}                                                            \
	} while (0)

/* |a - b| <= atol + rtol * |b|, b being the reference. */
#define CHECK_NEAR(a, b, atol, rtol)                                 \
	do {                                                             \
		double tl_a_ = (double)(a), tl_b_ = (double)(b);             \
		tl_test_checks++;                                            \
		if (!(fabs(tl_a_ - tl_b_) <= (atol) + (rtol) * fabs(tl_b_))) { \
			tl_test_fail(__FILE__, __LINE__, #a " ~ " #b);           \
			fprintf(stderr, "     %.9g vs %.9g\n", tl_a_, tl_b_);    \
		}                                                            \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                  \
	do {                                                             \
		const char *tl_h_ = (hay), *tl_n_ = (needle);                \
		tl_test_checks++;                                            \
		if (tl_h_ == NULL || strstr(tl_h_, tl_n_) == NULL) {         \
			tl_test_fail(__FILE__, __LINE__, #hay " contains " #needle); \
			fprintf(stderr, "     \"%s\" lacks \"%s\"\n",            \
			        tl_h_ ? tl_h_ : "(null)", tl_n_);                \
		}                                                            \
	} while (0)

static inline int tl_test_end(void)
{
	fprintf(stderr, "%d checks, %d failed\n", tl_test_checks, tl_test_failures);
	return tl_test_failures ? 1 : 0;
}

#endif
