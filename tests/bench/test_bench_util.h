/*
 * test_bench_util.h - runs fsesl-bench as a child process and captures
 * what it prints, for the black-box suites in tests/bench/.
 */
#ifndef TEST_BENCH_UTIL_H
#define TEST_BENCH_UTIL_H

#include <stddef.h>

struct bench_run {
	int status; /* exit code, or 128 + signal */
	char *out; /* stdout, NUL-terminated */
	size_t out_len;
	char *err; /* stderr, NUL-terminated */
	size_t err_len;
};

/* argv without argv[0], NULL-terminated. 0, or -1 if it could not run. */
int bench_run(const char *const *args, struct bench_run *r);
void bench_run_free(struct bench_run *r);

#endif
