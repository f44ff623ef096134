/*
 * test_cycles.c - an application that restarts its engine (a config
 * reload) must not pay for it forever.
 *
 * A thread that exits without being joined keeps its stack mapped (8 MiB
 * of address space by default), and /proc/self/task no longer shows it,
 * so the fault suites' thread count cannot see it. This test looks at the
 * address space instead: after warm-up (glibc's malloc arenas and stack
 * cache settle in the first cycles), 100 more start/stop cycles must not
 * grow VmSize by anything like one stack per cycle. The bound (256 MiB,
 * i.e. 32 stacks for 100 cycles) is a memory figure, not a timing one:
 * steady state is ~0, a per-cycle leak is >= 800 MiB.
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fault_harness.h"

static long
vm_size_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmSize: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void
cycle(void)
{
	fsesl_engine *e = NULL;
	int rc = fsesl_engine_start(NULL, &e);

	cr_assert_eq(rc, 0, "fsesl_engine_start: %d %s", rc, fsesl_strerror(rc));
	rc = fsesl_engine_stop(e);
	cr_assert_eq(rc, 0, "fsesl_engine_stop: %d %s", rc, fsesl_strerror(rc));
}

Test(cycles, restarts_do_not_grow_the_address_space, .timeout = 120)
{
	int threads = fh_count_threads(), fds = fh_count_fds();
	long before, after;

	for (int i = 0; i < 10; i++)
		cycle();
	before = vm_size_kb();
	cr_assert_gt(before, 0);
	for (int i = 0; i < 100; i++)
		cycle();
	after = vm_size_kb();
	cr_expect_lt(after - before, 256 * 1024,
	    "VmSize grew %ld MiB over 100 engine start/stop cycles (%ld KiB per cycle): "
	    "a thread left unjoined each time? (liburcu's call_rcu_data_free() does not "
	    "join its worker)",
	    (after - before) / 1024, (after - before) / 100);
	cr_expect_eq(fh_count_threads(), threads);
	cr_expect_eq(fh_count_fds(), fds);
}
