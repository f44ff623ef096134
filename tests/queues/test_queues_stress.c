/*
 * test_queues_stress.c - the long runs (label "stress"): more producers,
 * more items, more races. Same harnesses and checks as the unit suites.
 */
#include <criterion/criterion.h>

#include "qtest.h"

Test(ring_stress, p1_size4, .timeout = 300)
{
	qtest_ring_mpsc(1, 500000, 4);
}
Test(ring_stress, p2_size4, .timeout = 300)
{
	qtest_ring_mpsc(2, 200000, 4);
}
Test(ring_stress, p8_size4, .timeout = 300)
{
	qtest_ring_mpsc(8, 50000, 4);
}
Test(ring_stress, p32_size16, .timeout = 300)
{
	qtest_ring_mpsc(32, 10000, 16);
}
Test(ring_stress, p64_size4, .timeout = 300)
{
	qtest_ring_mpsc(64, 5000, 4);
}
Test(ring_stress, p64_size256, .timeout = 300)
{
	qtest_ring_mpsc(64, 10000, 256);
}

Test(sq_stress, p2_2shards_size4, .timeout = 300)
{
	qtest_sq(2, 200000, 2, 4);
}
Test(sq_stress, p16_4shards_size4, .timeout = 300)
{
	qtest_sq(16, 20000, 4, 4);
}
Test(sq_stress, p64_8shards_size8, .timeout = 300)
{
	qtest_sq(64, 5000, 8, 8);
}
Test(sq_stress, p64_3shards_size1024, .timeout = 300)
{
	qtest_sq(64, 5000, 3, 1024);
}

Test(cpl_race_stress, futex_30000, .timeout = 300)
{
	qtest_cpl_race(30000, false);
}
Test(cpl_race_stress, poll_5000, .timeout = 300)
{
	qtest_cpl_race(5000, true);
}

Test(wakeb_race_stress, futex_8x20000, .timeout = 300)
{
	qtest_wakeb_race(8, 20000, FSESL_WAKEB_FUTEX_ONLY, NULL);
}
Test(wakeb_race_stress, uring_8x20000, .timeout = 300)
{
	qtest_wakeb_race(8, 20000, 0, NULL);
}
