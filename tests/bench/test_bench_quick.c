/*
 * test_bench_quick.c - the whole `fsesl-bench --quick` run: every scenario
 * family against the embedded simulator, every reply checked against its
 * request. It must run every scenario and end with zero errors, zero
 * mismatches and zero lost requests. Speed is not asserted.
 */
#include <criterion/criterion.h>

#include <cjson/cJSON.h>
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
	const cJSON *sc;
	cJSON_ArrayForEach(sc, arr)
	{
		const char *name = cJSON_GetObjectItem(sc, "name")->valuestring;
		cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(sc, "ran")), "%s did not run", name);
		cr_expect_gt(cJSON_GetObjectItem(sc, "commands")->valuedouble, 0, "%s", name);
		cr_expect_eq(cJSON_GetObjectItem(sc, "errors")->valuedouble, 0, "%s", name);
		cr_expect_eq(cJSON_GetObjectItem(sc, "mismatches")->valuedouble, 0, "%s", name);
		cr_expect_eq(cJSON_GetObjectItem(sc, "lost")->valuedouble, 0, "%s", name);
	}
	cr_expect(cJSON_IsTrue(cJSON_GetObjectItem(root, "ok")));
	/* With every scenario run, every ratio has a value. */
	const cJSON *ra = cJSON_GetObjectItem(root, "ratios"), *v;
	cJSON_ArrayForEach(v, ra) cr_expect(cJSON_IsNumber(v), "ratio %s is null", v->string);
	cJSON_Delete(root);
	bench_run_free(&r);
}
