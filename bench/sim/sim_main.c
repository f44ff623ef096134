/*
 * sim_main.c - fsesl-sim, the simulator as a stand-alone program.
 *
 * The server runs on its own thread (fsesl_sim_start); the main thread only
 * parses flags and then waits in sigwait() with SIGINT/SIGTERM blocked in
 * every thread, so a signal never interrupts the loop halfway through a
 * write and shutdown is an ordinary fsesl_sim_stop().
 */
#include "fsesl_sim.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
usage(FILE *f)
{
	fputs("usage: fsesl-sim [options]\n"
	      "A FreeSWITCH 1.10.12 Event Socket (inbound) simulator. Prints\n"
	      "\"listening on ADDR:PORT\" as its first line, runs until SIGINT/SIGTERM.\n"
	      "\n"
	      "  --listen ADDR:PORT        IPv4 address (IPv6 is not supported) and port\n"
	      "                            (default 127.0.0.1:8021;\n"
	      "                            port 0: the kernel picks one)\n"
	      "  --password PW             auth password (default ClueCon)\n"
	      "  --user U@D:PW[:EV[:API[:LOG]]]\n"
	      "                            a userauth user; EV and API are comma lists\n"
	      "                            (default all), LOG is true|false (default\n"
	      "                            true); may be repeated\n"
	      "  --heartbeat-interval S    HEARTBEAT every S seconds (default 20; 0: none)\n"
	      "  --heartbeat-ms MS         the same in milliseconds\n"
	      "  --auth-timeout-ms MS      close unauthenticated connections (default 25000;\n"
	      "                            0: never)\n"
	      "  --event-queue-max N       per-connection event queue (default 100000)\n"
	      "  --event-drop-kill N       consecutive drops before the kill (default 500)\n"
	      "  --hostname NAME           FreeSWITCH-Hostname (default sim)\n"
	      "  --ipv4 ADDR, --ipv6 ADDR  FreeSWITCH-IPv4 / -IPv6 event headers\n"
	      "  --event-poll-ms MS        hold events for an idle connection until its next\n"
	      "                            MS poll tick, like the real server (20); a byte\n"
	      "                            from the client (a lone LF) wakes it (default 0:\n"
	      "                            deliver at once)\n"
	      "  --api-cost-us US          each api command holds its connection US µs\n"
	      "                            (with --fs-like: CPU in its connection's thread)\n"
	      "  --bgapi-cost-us US        each bgapi command holds its connection US µs\n"
	      "  --fs-like                 like a real FreeSWITCH 1.10.12: a thread per\n"
	      "                            connection reading one byte per recv(), api run\n"
	      "                            inline, events at the 20 ms poll or a kick, one\n"
	      "                            dispatch thread; costs calibrated against the\n"
	      "                            measured server (docs/simulator.md). Given first,\n"
	      "                            whatever its place; the other flags adjust it\n"
	      "  --realistic               the same as --fs-like (its older name)\n"
	      "  --fs-byte-cost-ns NS      with --fs-like: CPU per command byte read\n"
	      "  --fs-dispatch-cost-us US  with --fs-like: dispatch thread CPU per event\n"
	      "  --max-sessions N          Max-Sessions (default 1000)\n"
	      "  --idle-cpu PCT            Idle-CPU in HEARTBEAT (default 99)\n"
	      "  --session-count N         Session-Count in HEARTBEAT (default: the number\n"
	      "                            of channels; once --idle-cpu is given: N or 0)\n"
	      "\n"
	      "Faults, for every connection (see docs/simulator.md):\n"
	      "  --delay-ms MS             wait MS before running each command\n"
	      "  --stall                   never read nor write after the greeting\n"
	      "  --close-after-bytes N     close after writing N bytes\n"
	      "  --close-after-msgs N      close after N messages (greeting included)\n"
	      "  --close-mid-frame         write half of the first reply, close\n"
	      "  --garbage N               N garbage bytes instead of the first reply\n"
	      "  --tiny-writes B:US        write B bytes at a time, US microseconds apart\n"
	      "  --drop-reply N            never answer the N-th command\n"
	      "  --refuse                  close the listening socket at once\n"
	      "  --silent-accept           accept, never greet\n"
	      "  --rude-reject             text/rude-rejection + notice + close\n"
	      "  --no-heartbeat            do not send heartbeats\n"
	      "  --event-flood RATE        CUSTOM sim::flood events per second\n"
	      "  -h, --help                this text\n",
	    f);
}

enum {
	O_LISTEN = 256,
	O_PASSWORD,
	O_USER,
	O_HB,
	O_HB_MS,
	O_AUTH_TO,
	O_QMAX,
	O_DROPKILL,
	O_HOST,
	O_IPV4,
	O_IPV6,
	O_MAXSESS,
	O_IDLE,
	O_SESS,
	O_DELAY,
	O_STALL,
	O_CAB,
	O_CAM,
	O_CMF,
	O_GARBAGE,
	O_TINY,
	O_DROP,
	O_REFUSE,
	O_SILENT,
	O_RUDE,
	O_NOHB,
	O_FLOOD,
	O_POLL,
	O_API_COST,
	O_BGAPI_COST,
	O_REALISTIC,
	O_FSLIKE,
	O_BYTE_COST,
	O_DISPATCH_COST,
};

static bool
parse_u64(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		return false;
	*out = v;
	return true;
}

/* "user@domain:pass[:events[:api[:log]]]", split in place. */
static bool
parse_user(char *spec, struct fsesl_sim_user *u)
{
	char *parts[5] = {0};
	int n = 0;

	parts[n++] = spec;
	for (char *p = spec; *p && n < 5; p++)
		if (*p == ':') {
			*p = '\0';
			parts[n++] = p + 1;
		}
	if (n < 2 || !strchr(parts[0], '@'))
		return false;
	u->user = parts[0];
	u->password = parts[1];
	u->allowed_events = n > 2 && *parts[2] ? parts[2] : NULL;
	u->allowed_api = n > 3 && *parts[3] ? parts[3] : NULL;
	u->allow_log = n > 4 ? strcmp(parts[4], "false") != 0 : true;
	return true;
}

struct fault_req {
	enum fsesl_sim_fault f;
	uint64_t a, b;
};

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, O_LISTEN},
	    {"password", required_argument, NULL, O_PASSWORD},
	    {"user", required_argument, NULL, O_USER},
	    {"heartbeat-interval", required_argument, NULL, O_HB},
	    {"heartbeat-ms", required_argument, NULL, O_HB_MS},
	    {"auth-timeout-ms", required_argument, NULL, O_AUTH_TO},
	    {"event-queue-max", required_argument, NULL, O_QMAX},
	    {"event-drop-kill", required_argument, NULL, O_DROPKILL},
	    {"hostname", required_argument, NULL, O_HOST},
	    {"ipv4", required_argument, NULL, O_IPV4},
	    {"ipv6", required_argument, NULL, O_IPV6},
	    {"max-sessions", required_argument, NULL, O_MAXSESS},
	    {"idle-cpu", required_argument, NULL, O_IDLE},
	    {"session-count", required_argument, NULL, O_SESS},
	    {"delay-ms", required_argument, NULL, O_DELAY},
	    {"stall", no_argument, NULL, O_STALL},
	    {"close-after-bytes", required_argument, NULL, O_CAB},
	    {"close-after-msgs", required_argument, NULL, O_CAM},
	    {"close-mid-frame", no_argument, NULL, O_CMF},
	    {"garbage", required_argument, NULL, O_GARBAGE},
	    {"tiny-writes", required_argument, NULL, O_TINY},
	    {"drop-reply", required_argument, NULL, O_DROP},
	    {"refuse", no_argument, NULL, O_REFUSE},
	    {"silent-accept", no_argument, NULL, O_SILENT},
	    {"rude-reject", no_argument, NULL, O_RUDE},
	    {"no-heartbeat", no_argument, NULL, O_NOHB},
	    {"event-flood", required_argument, NULL, O_FLOOD},
	    {"event-poll-ms", required_argument, NULL, O_POLL},
	    {"api-cost-us", required_argument, NULL, O_API_COST},
	    {"bgapi-cost-us", required_argument, NULL, O_BGAPI_COST},
	    {"realistic", no_argument, NULL, O_REALISTIC},
	    {"fs-like", no_argument, NULL, O_FSLIKE},
	    {"fs-byte-cost-ns", required_argument, NULL, O_BYTE_COST},
	    {"fs-dispatch-cost-us", required_argument, NULL, O_DISPATCH_COST},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct fsesl_sim_config cfg;
	struct fsesl_sim_user users[64];
	struct fault_req faults[32];
	size_t n_faults = 0;
	char addr[64] = "127.0.0.1";
	bool load_set = false;
	struct fsesl_sim_load load = {.idle_cpu = 99.0, .session_count = 0, .max_sessions = 1000};
	bool sess_set = false;
	uint64_t v;
	int o;

	fsesl_sim_config_init(&cfg);
	cfg.port = 8021;
	/* The preset first, so that the other flags adjust it wherever they are. */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--fs-like") || !strcmp(argv[i], "--realistic"))
			fsesl_sim_config_fs_like(&cfg);
	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		bool ok = true;
		switch (o) {
		case 'h':
			usage(stdout);
			return 0;
		case O_LISTEN: {
			char *colon = strrchr(optarg, ':');
			if (!colon || (size_t)(colon - optarg) >= sizeof(addr) ||
			    !parse_u64(colon + 1, &v) || v > 65535) {
				ok = false;
				break;
			}
			memcpy(addr, optarg, (size_t)(colon - optarg));
			addr[colon - optarg] = '\0';
			cfg.port = (uint16_t)v;
			break;
		}
		case O_PASSWORD:
			cfg.password = optarg;
			break;
		case O_USER:
			if (cfg.n_users >= sizeof(users) / sizeof(users[0]) ||
			    !parse_user(optarg, &users[cfg.n_users])) {
				ok = false;
				break;
			}
			cfg.n_users++;
			break;
		case O_HB:
			ok = parse_u64(optarg, &v) && v <= 4000000;
			cfg.heartbeat_interval_ms = (unsigned int)(v * 1000);
			break;
		case O_HB_MS:
			ok = parse_u64(optarg, &v) && v <= 4000000000u;
			cfg.heartbeat_interval_ms = (unsigned int)v;
			break;
		case O_AUTH_TO:
			ok = parse_u64(optarg, &v) && v <= 4000000000u;
			cfg.auth_timeout_ms = (unsigned int)v;
			break;
		case O_QMAX:
			ok = parse_u64(optarg, &v) && v > 0 && v <= 100000000;
			cfg.event_queue_max = (unsigned int)v;
			break;
		case O_DROPKILL:
			ok = parse_u64(optarg, &v) && v <= 100000000;
			cfg.event_drop_kill = (unsigned int)v;
			break;
		case O_POLL:
			ok = parse_u64(optarg, &v) && v <= 60000;
			cfg.event_poll_ms = (unsigned int)v;
			break;
		case O_API_COST:
			ok = parse_u64(optarg, &v) && v <= 10000000;
			cfg.api_cost_us = (unsigned int)v;
			break;
		case O_BGAPI_COST:
			ok = parse_u64(optarg, &v) && v <= 10000000;
			cfg.bgapi_cost_us = (unsigned int)v;
			break;
		case O_REALISTIC:
		case O_FSLIKE:
			/* Applied above, unless abbreviated. */
			if (!cfg.fs_like)
				fsesl_sim_config_fs_like(&cfg);
			break;
		case O_BYTE_COST:
			ok = parse_u64(optarg, &v) && v <= 10000000;
			cfg.fs_byte_cost_ns = (unsigned int)v;
			break;
		case O_DISPATCH_COST:
			ok = parse_u64(optarg, &v) && v <= 10000000;
			cfg.fs_dispatch_cost_us = (unsigned int)v;
			break;
		case O_HOST:
			cfg.hostname = optarg;
			break;
		case O_IPV4:
			cfg.ipv4 = optarg;
			break;
		case O_IPV6:
			cfg.ipv6 = optarg;
			break;
		case O_MAXSESS:
			ok = parse_u64(optarg, &v) && v > 0 && v <= 10000000;
			cfg.max_sessions = (unsigned int)v;
			load.max_sessions = (unsigned int)v;
			break;
		case O_IDLE: {
			char *end;
			load.idle_cpu = strtod(optarg, &end);
			ok = end != optarg && !*end && load.idle_cpu >= 0 && load.idle_cpu <= 100;
			load_set = true;
			break;
		}
		case O_SESS:
			ok = parse_u64(optarg, &v) && v <= 10000000;
			load.session_count = (unsigned int)v;
			load_set = sess_set = true;
			break;
		case O_TINY: {
			char *colon = strchr(optarg, ':');
			uint64_t b = 0;
			if (colon)
				*colon = '\0';
			ok = parse_u64(optarg, &v) && v > 0 && (!colon || parse_u64(colon + 1, &b));
			if (ok && n_faults < 32)
				faults[n_faults++] =
				    (struct fault_req){FSESL_SIM_FAULT_TINY_WRITES, v, b};
			break;
		}
		default: {
			struct fault_req fr = {FSESL_SIM_FAULT_NONE, 0, 0};
			switch (o) {
			case O_DELAY:
				fr.f = FSESL_SIM_FAULT_DELAY;
				break;
			case O_STALL:
				fr.f = FSESL_SIM_FAULT_STALL;
				break;
			case O_CAB:
				fr.f = FSESL_SIM_FAULT_CLOSE_AFTER_BYTES;
				break;
			case O_CAM:
				fr.f = FSESL_SIM_FAULT_CLOSE_AFTER_MSGS;
				break;
			case O_CMF:
				fr.f = FSESL_SIM_FAULT_CLOSE_MID_FRAME;
				break;
			case O_GARBAGE:
				fr.f = FSESL_SIM_FAULT_GARBAGE;
				break;
			case O_DROP:
				fr.f = FSESL_SIM_FAULT_DROP_REPLY;
				break;
			case O_REFUSE:
				fr.f = FSESL_SIM_FAULT_REFUSE;
				break;
			case O_SILENT:
				fr.f = FSESL_SIM_FAULT_SILENT_ACCEPT;
				break;
			case O_RUDE:
				fr.f = FSESL_SIM_FAULT_RUDE_REJECT;
				break;
			case O_NOHB:
				fr.f = FSESL_SIM_FAULT_NO_HEARTBEAT;
				break;
			case O_FLOOD:
				fr.f = FSESL_SIM_FAULT_EVENT_FLOOD;
				break;
			default:
				usage(stderr);
				return 2;
			}
			if (optarg) {
				ok = parse_u64(optarg, &fr.a);
			}
			if (ok && n_faults < 32)
				faults[n_faults++] = fr;
			break;
		}
		}
		if (!ok) {
			/* Never echo --password / --user values: they hold secrets. */
			fprintf(stderr, "fsesl-sim: bad value for an option (see --help)\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "fsesl-sim: unexpected argument (see --help)\n");
		return 2;
	}
	cfg.listen_addr = addr;
	cfg.users = users;
	if (!sess_set)
		load.session_count = 0;

	/* Block the signals before the server thread exists: it inherits the mask. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	fsesl_sim *sim;
	uint16_t port;
	int rc = fsesl_sim_start(&cfg, &sim, &port);
	if (rc) {
		fprintf(stderr, "fsesl-sim: cannot listen on %s:%u: %s\n", addr, cfg.port,
		    strerror(-rc));
		return 1;
	}
	if (load_set && sess_set)
		fsesl_sim_set_load(sim, &load);
	else if (load_set) {
		/* Only Idle-CPU given: Session-Count keeps following the channels. */
		load.session_count = 0;
		fsesl_sim_set_load(sim, &load);
	}
	for (size_t i = 0; i < n_faults; i++)
		fsesl_sim_fault(sim, 0, faults[i].f, faults[i].a, faults[i].b);
	printf("listening on %s:%u\n", addr, port);
	fflush(stdout);

	int sig = 0;
	sigwait(&set, &sig);
	fsesl_sim_stop(sim);
	return 0;
}
