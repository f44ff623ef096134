/*
 * tsan_main.c - the threaded queues/ harnesses under ThreadSanitizer,
 * without Criterion (which cannot start under TSan, see crit_shim.h).
 * Smaller counts than the Criterion suites: TSan is 5-15x slower.
 */
#include <stdio.h>

#include "qtest.h"

int
main(void)
{
	unsigned int passed = 0;

	qtest_ring_mpsc(1, 5000, 4);
	passed++;
	qtest_ring_mpsc(4, 2000, 4);
	passed++;
	qtest_ring_mpsc(16, 300, 16);
	passed++;
	qtest_sq(8, 1000, 3, 4);
	passed++;
	qtest_sq(4, 2000, 2, 64);
	passed++;
	qtest_cpl_race(1000, false);
	passed++;
	qtest_cpl_race(200, true);
	passed++;
	qtest_wakeb_race(3, 400, FSESL_WAKEB_FUTEX_ONLY, NULL);
	passed++;
	qtest_wakeb_race(3, 400, 0, NULL);
	passed++;
	printf("%u passed, 0 failed\n", passed);
	return 0;
}
