/*
 * bkv-router: the front end clients talk to (router.h has the behaviour).
 *
 * Normal path: parse the flags, turn off core dumps, load router.key
 * (refused if other users can read it) and the key config (checked by
 * decoding it; its fingerprint is logged), start the router on one libuv
 * loop, print the bound address, and run until SIGINT or SIGTERM, which
 * close everything cleanly before exit status 0.
 * Failure modes: a usage error exits 2 with one line naming the flag; a key,
 * key config or listen failure exits 1 with one line saying what and why.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "node/fileio.h"
#include "node/router.h"
#include "proto/err.h"
#include "proto/msg.h"
#include "proto/util.h"

static const char *prog = "bkv-router";

static const char usage_text[] =
    "usage: bkv-router --node HOST:PORT [--node ...] --key router.key [options]\n"
    "\n"
    "The front end of a BKV cluster. Clients send POST /v1/vault with\n"
    "Authorization: Bearer <account token> and an encapsulated request; the\n"
    "router checks the token and the account's rate and forwards the envelope,\n"
    "which it cannot open, to the vault leader, proving to the node that it is\n"
    "a router. GET /v1/keyconfig serves the realm key config, GET /livez says ok.\n"
    "\n"
    "options:\n"
    "  --listen HOST:PORT   address to listen on (default 127.0.0.1:8080;\n"
    "                       port 0 picks one, printed at start)\n"
    "  --node HOST:PORT     a vault node's gateway address; repeat for each node\n"
    "                       (up to 16). The first is tried first; a node that is\n"
    "                       not the leader names it, and the router follows if the\n"
    "                       named address is one of these\n"
    "  --key FILE           router.key from bkv-admin router keygen (mode 0600)\n"
    "  --keyconfig FILE     the realm key config from bkv-admin realm keyconfig,\n"
    "                       served at GET /v1/keyconfig (clients check its\n"
    "                       fingerprint against their pin)\n"
    "  --rate N             requests per minute per account (default 60)\n"
    "  --burst N            requests an idle account may send at once (default 20)\n"
    "  --max-body BYTES     largest encapsulated request accepted (default 4096)\n"
    "  --deadline-ms MS     how long one request may wait for a leader during an\n"
    "                       election before 503 + Retry-After (default 5000)\n"
    "  --log-level LEVEL    error, warn, info (one line per request; default) or\n"
    "                       debug (also every attempt to a node). No token, header\n"
    "                       value or body byte is ever logged.\n"
    "  --help               this text\n"
    "\n"
    "Exit status: 0 after SIGINT/SIGTERM, 1 on a start-up failure, 2 on a usage\n"
    "error. See docs/operations.md.\n";

static int usage(FILE *f, int status)
{
    fputs(usage_text, f);
    return status;
}

static int parse_uint(const char *flag, const char *s, unsigned long min, unsigned long max,
                      unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "%s: %s: expected a whole number from %lu to %lu\n", prog, flag, min, max);
        return 0;
    }
    *out = v;
    return 1;
}

struct main_state {
    struct bkv_router *router;
    uv_signal_t sigint, sigterm;
};

static void on_router_closed(void *data)
{
    (void)data;
    fprintf(stderr, "%s: stopped\n", prog);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct main_state *m = sig->data;

    fprintf(stderr, "%s: %s: shutting down\n", prog, signum == SIGINT ? "SIGINT" : "SIGTERM");
    uv_close((uv_handle_t *)&m->sigint, NULL);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    bkv_router_close(m->router, on_router_closed, m);
    m->router = NULL;
}

static int load_keyconfig(const char *path, uint8_t **out, size_t *len)
{
    struct bkv_keyconfig kc;
    uint8_t fp[BKV_KEYCONFIG_FP_LEN];
    char err[512] = "", hex[2 * BKV_KEYCONFIG_FP_LEN + 1];
    int rc = bkv_file_read(path, BKV_KEYCONFIG_MAX_LEN, out, len, err, sizeof(err));

    if (rc != BKV_OK) {
        fprintf(stderr, "%s: --keyconfig: %s: %s\n", prog, bkv_strerror(rc), err);
        return rc;
    }
    rc = bkv_keyconfig_decode(*out, *len, &kc);
    if (rc == BKV_OK)
        rc = bkv_keyconfig_fingerprint(*out, *len, fp);
    if (rc != BKV_OK) {
        fprintf(stderr,
                "%s: --keyconfig: %s is not a realm key config (%s); make one with "
                "bkv-admin realm keyconfig\n",
                prog, path, bkv_strerror(rc));
        free(*out);
        *out = NULL;
        return rc;
    }
    bkv_hex_encode(fp, sizeof(fp), hex);
    fprintf(stderr, "%s: serving key config %s, fingerprint %s\n", prog, path, hex);
    return BKV_OK;
}

/* No core dump may ever hold the token key. */
int main(int argc, char **argv)
{
    static const struct option long_opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"node", required_argument, NULL, 'n'},
        {"key", required_argument, NULL, 'k'},
        {"keyconfig", required_argument, NULL, 'c'},
        {"rate", required_argument, NULL, 'r'},
        {"burst", required_argument, NULL, 'b'},
        {"max-body", required_argument, NULL, 'm'},
        {"deadline-ms", required_argument, NULL, 'd'},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *nodes[BKV_ROUTER_MAX_NODES], *key_path = NULL, *kc_path = NULL;
    struct bkv_router_config cfg = {.listen = "127.0.0.1:8080", .log_level = BKV_ROUTER_LOG_INFO};
    struct bkv_router_keys keys;
    struct main_state m = {0};
    uv_loop_t loop;
    uint8_t *kc = NULL;
    size_t kc_len = 0;
    unsigned long v;
    char err[512] = "";
    int c, rc, status = 1, level;

    if (!bkv_no_core_dumps()) {
        fprintf(stderr, "%s: cannot disable core dumps: %s\n", prog, strerror(errno));
        return 1;
    }
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            cfg.listen = optarg;
            break;
        case 'n':
            if (cfg.n_nodes == BKV_ROUTER_MAX_NODES) {
                fprintf(stderr, "%s: --node: at most %d nodes\n", prog, BKV_ROUTER_MAX_NODES);
                return 2;
            }
            nodes[cfg.n_nodes++] = optarg;
            break;
        case 'k':
            key_path = optarg;
            break;
        case 'c':
            kc_path = optarg;
            break;
        case 'r':
            if (!parse_uint("--rate", optarg, 1, 1000000, &v))
                return 2;
            cfg.rate_per_min = (unsigned)v;
            break;
        case 'b':
            if (!parse_uint("--burst", optarg, 1, 1000000, &v))
                return 2;
            cfg.burst = (unsigned)v;
            break;
        case 'm':
            if (!parse_uint("--max-body", optarg, 64, 1u << 20, &v))
                return 2;
            cfg.max_body = v;
            break;
        case 'd':
            if (!parse_uint("--deadline-ms", optarg, 10, 600000, &v))
                return 2;
            cfg.deadline_ms = (unsigned)v;
            break;
        case 'L':
            level = bkv_router_log_level_parse(optarg);
            if (level < 0) {
                fprintf(stderr, "%s: --log-level: expected error, warn, info or debug\n", prog);
                return 2;
            }
            cfg.log_level = (enum bkv_router_log_level)level;
            break;
        case 'h':
            return usage(stdout, 0);
        default:
            return usage(stderr, 2);
        }
    }
    if (optind != argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return 2;
    }
    if (cfg.n_nodes == 0 || key_path == NULL) {
        fprintf(stderr, "%s: missing %s (see --help)\n", prog,
                cfg.n_nodes == 0 ? "--node" : "--key");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    rc = bkv_router_key_load(key_path, &keys, err, sizeof(err));
    if (rc != BKV_OK) {
        fprintf(stderr, "%s: --key: %s: %s\n", prog, bkv_strerror(rc), err);
        return 1;
    }
    if (kc_path != NULL && load_keyconfig(kc_path, &kc, &kc_len) != BKV_OK) {
        bkv_router_keys_wipe(&keys);
        return 1;
    }
    cfg.nodes = nodes;
    cfg.keys = &keys;
    cfg.keyconfig = kc;
    cfg.keyconfig_len = kc_len;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "%s: cannot start the event loop\n", prog);
        goto out;
    }
    rc = bkv_router_start(&loop, &cfg, &m.router, err, sizeof(err));
    bkv_router_keys_wipe(&keys); /* the router has its own copy */
    if (rc != BKV_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, bkv_strerror(rc), err);
        uv_run(&loop, UV_RUN_DEFAULT); /* let what was opened close */
        uv_loop_close(&loop);
        goto out;
    }
    uv_signal_init(&loop, &m.sigint);
    uv_signal_init(&loop, &m.sigterm);
    m.sigint.data = m.sigterm.data = &m;
    uv_signal_start(&m.sigint, on_signal, SIGINT);
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    fprintf(stderr, "%s: listening on %s (port %d), %zu vault node%s, first %s\n", prog, cfg.listen,
            bkv_router_port(m.router), cfg.n_nodes, cfg.n_nodes == 1 ? "" : "s", nodes[0]);
    fflush(stderr);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        fprintf(stderr, "%s: warning: handles left open at exit\n", prog);
    status = 0;
out:
    bkv_router_keys_wipe(&keys);
    free(kc);
    return status;
}
