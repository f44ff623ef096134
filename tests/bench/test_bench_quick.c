/*
 * test_bench_quick.c - the whole `fsesl-bench --quick` run: every scenario
 * family against the embedded simulator, every reply checked against its
 * request. It must run every scenario and end with zero errors, zero
 * mismatches and zero lost requests. Speed is not asserted.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <string.h>

#include "test_bench_util.h"

Test(bench_quick, every_scenario_runs_with_no_mismatch, .timeout = 240)
{
	struct bench_run r;
	const char *args[] = {"--quick", "--json", "--no-progress", NULL};
	cr_assert_eq(bench_run(args, &r), 0);
	cr_expect_eq(r.status, 0, "exit %d, stderr:\n%s", r.status, r.err);
	cJSON *root = cJSON_Parse(r.out);
	cr_assert_not_null(root, "stdout is not JSON:\n%s\nstderr:\n%s", r.out, r.err);
	const cJSON *arr = cJSON_GetObjectItem(root, "scenarios");
	cr_assert(cJSON_IsArray(arr));
	cr_expect_geq(cJSON_GetArraySize(arr), 20);
	bool uring =
	    cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "wake"), "uring_available"));
	unsigned blocking = 0, blocking_uring = 0;
	const cJSON *sc;
	cJSON_ArrayForEach(sc, arr)
	{
		const char *name = cJSON_GetObjectItem(sc, "name")->valuestring;
		const char *mode = cJSON_GetObjectItem(sc, "mode")->valuestring;
		cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(sc, "ran")), "%s did not run", name);
		cr_expect_gt(cJSON_GetObjectItem(sc, "commands")->valuedouble, 0, "%s", name);
		cr_expect_eq(cJSON_GetObjectItem(sc, "errors")->valuedouble, 0, "%s", name);
		cr_expect_eq(cJSON_GetObjectItem(sc, "mismatches")->valuedouble, 0, "%s", name);
		cr_expect_eq(cJSON_GetObjectItem(sc, "lost")->valuedouble, 0, "%s", name);
		/* Client CPU per command, for every scenario. */
		cr_expect_gt(cJSON_GetObjectItem(sc, "cpu_us_per_cmd")->valuedouble, 0, "%s", name);
		blocking += !strcmp(mode, "blocking");
		blocking_uring += !strcmp(mode, "blocking_uring");
	}
	/* The bare-blocking baseline at every worker count and dimension; its
	 * io_uring variant exactly where io_uring can wake futexes. */
	cr_expect_geq(blocking, 10);
	cr_expect_eq(blocking_uring, uring ? blocking : 0);
	cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(root, "ok")));
	/* With every scenario run, every ratio has a value; only the io_uring
	 * comparisons may lack theirs, where io_uring cannot wake futexes. */
	const cJSON *ra = cJSON_GetObjectItem(root, "ratios"), *v;
	cJSON_ArrayForEach(v, ra)
	{
		if (!uring && strstr(v->string, "uring"))
			cr_expect(cJSON_IsNull(v), "ratio %s without io_uring", v->string);
		else
			cr_expect(cJSON_IsNumber(v), "ratio %s is null", v->string);
	}
	cJSON_Delete(root);
	bench_run_free(&r);
}
