/*
 * crit_shim.h - the few Criterion macros qtest.c uses, for the TSan driver.
 *
 * Criterion cannot start under ThreadSanitizer (its boxfort arena fails to
 * map: "Could not initialize inheritable arena", Snaipe/Criterion#274), so
 * the TSan build runs the threaded harnesses from a plain main()
 * (tsan_main.c). A failed check prints where and aborts.
 */
#ifndef FSESL_CRIT_SHIM_H
#define FSESL_CRIT_SHIM_H

#include <stdio.h>
#include <stdlib.h>

#define qshim_check(cond, text)                                                                    \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, text);    \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#define cr_assert(c, ...) qshim_check((c), #c)
#define cr_assert_not_null(p, ...) qshim_check((p) != NULL, #p " != NULL")
#define cr_assert_eq(a, b, ...) qshim_check((a) == (b), #a " == " #b)
#define cr_assert_leq(a, b, ...) qshim_check((a) <= (b), #a " <= " #b)
#define cr_log_info(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))

#endif /* FSESL_CRIT_SHIM_H */
