/*
 * `bkv-admin status`: the whole cluster in a terminal. It asks one node's
 * admin endpoint for /v1/status, takes the member list from it, asks every
 * member for /v1/status and /readyz, and draws the members by data center
 * with role, applied index, lag behind the leader's commit index, and health.
 * A member that does not answer is drawn as unreachable; the command still
 * succeeds when at least the first node answered (exit 0), and exits 3 when
 * the cluster has no ready leader, so scripts can wait on it.
 */
#include "node/admin_status.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/internal.h"
#include "proto/err.h"

#define MAX_MEMBERS 16

struct member {
    long long id;
    char dc[64];
    char admin[128];
    int reachable, ready;
    char role[32];
    long long applied, commit, term, leader;
    char reason[300];
};

static const char usage_text[] =
    "usage: bkv-admin status --admin HOST:PORT [--timeout SECONDS]\n"
    "\n"
    "Draws the cluster: every member (from the first node's /v1/status) by data\n"
    "center, with its role, applied index, lag behind the leader's commit index,\n"
    "and health (/readyz). --admin is any node's admin address.\n"
    "Exit status: 0 with a ready leader, 3 without one, 1 when the first node\n"
    "cannot be read, 2 for a usage error.\n";

/* GET path from addr; the parsed JSON body (caller decrefs) and *status, or NULL. */
static json_t *get_json(const char *addr, const char *path, unsigned timeout_ms, int *status,
                        char *err, size_t err_cap)
{
    struct bkv_client_http_request req = {.method = "GET", .path = path};
    struct bkv_client_http_response resp;
    memset(&resp, 0, sizeof(resp));
    *status = 0;
    if (bkv_client_http_do(addr, &req, 1 << 20, timeout_ms, &resp, err, err_cap) != BKV_OK)
        return NULL;
    *status = resp.status;
    json_error_t je;
    json_t *doc =
        resp.body != NULL ? json_loadb((const char *)resp.body, resp.body_len, 0, &je) : NULL;
    if (doc == NULL)
        snprintf(err, err_cap, "%s%s: not JSON", addr, path);
    bkv_client_http_response_free(&resp);
    return doc;
}

static void copy_str(char *dst, size_t cap, json_t *v)
{
    snprintf(dst, cap, "%s", json_is_string(v) ? json_string_value(v) : "?");
}

static void read_member(struct member *m, unsigned timeout_ms)
{
    char err[256];
    int status = 0;
    json_t *st = get_json(m->admin, "/v1/status", timeout_ms, &status, err, sizeof(err));
    if (st == NULL || status != 200) {
        /* The client's sentence names a "router"; keep only its cause. */
        const char *cause = st == NULL ? strrchr(err, ':') : NULL;
        snprintf(m->reason, sizeof(m->reason), "%s",
                 st == NULL ? (cause != NULL ? cause + 2 : err) : "status page failed");
        json_decref(st);
        return;
    }
    m->reachable = 1;
    copy_str(m->role, sizeof(m->role), json_object_get(st, "role"));
    m->applied = json_integer_value(json_object_get(st, "applied_index"));
    m->commit = json_integer_value(json_object_get(st, "commit_index"));
    m->term = json_integer_value(json_object_get(st, "term"));
    m->leader = json_integer_value(json_object_get(json_object_get(st, "leader"), "id"));
    json_decref(st);
    json_t *rd = get_json(m->admin, "/readyz", timeout_ms, &status, err, sizeof(err));
    m->ready = rd != NULL && status == 200;
    if (rd != NULL && !m->ready)
        copy_str(m->reason, sizeof(m->reason), json_object_get(rd, "reason"));
    json_decref(rd);
}

int bkv_admin_status_main(int argc, char **argv)
{
    static const struct option opts[] = {{"admin", required_argument, NULL, 'a'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *first = NULL;
    unsigned timeout_ms = 3000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            first = optarg;
            break;
        case 't':
            timeout_ms = (unsigned)strtoul(optarg, NULL, 10) * 1000;
            break;
        case 'h':
            fputs(usage_text, stdout);
            return 0;
        default:
            fputs(usage_text, stderr);
            return 2;
        }
    }
    if (first == NULL || optind != argc || timeout_ms == 0) {
        fputs(usage_text, stderr);
        return 2;
    }
    char err[256];
    int status = 0;
    json_t *st = get_json(first, "/v1/status", timeout_ms, &status, err, sizeof(err));
    if (st == NULL || status != 200) {
        fprintf(stderr, "bkv-admin status: cannot read %s/v1/status: %s\n", first,
                st == NULL ? err : "HTTP error");
        json_decref(st);
        return 1;
    }
    struct member ms[MAX_MEMBERS];
    size_t n = 0, i;
    json_t *m;
    memset(ms, 0, sizeof(ms));
    json_array_foreach(json_object_get(st, "members"), i, m)
    {
        if (n == MAX_MEMBERS)
            break;
        ms[n].id = json_integer_value(json_object_get(m, "id"));
        copy_str(ms[n].dc, sizeof(ms[n].dc), json_object_get(m, "dc"));
        copy_str(ms[n].admin, sizeof(ms[n].admin), json_object_get(m, "admin"));
        n++;
    }
    json_decref(st);

    long long leader = 0, commit = 0, term = 0;
    for (i = 0; i < n; i++) {
        read_member(&ms[i], timeout_ms);
        if (ms[i].reachable && strcmp(ms[i].role, "leader") == 0) {
            leader = ms[i].id;
            commit = ms[i].commit;
            term = ms[i].term;
        }
    }
    const struct member *lm = NULL;
    for (i = 0; i < n; i++)
        if (ms[i].id == leader)
            lm = &ms[i];
    if (lm != NULL)
        printf("cluster: %zu members, leader node %lld (%s), term %lld, commit index %lld\n", n,
               leader, lm->dc, term, commit);
    else
        printf("cluster: %zu members, NO READY LEADER\n", n);
    /* Members grouped by data center, in the order the DCs first appear. */
    for (i = 0; i < n; i++) {
        int seen = 0;
        for (size_t j = 0; j < i; j++)
            seen |= strcmp(ms[j].dc, ms[i].dc) == 0;
        if (seen)
            continue;
        printf("%s\n", ms[i].dc);
        for (size_t j = i; j < n; j++) {
            const struct member *x = &ms[j];
            if (strcmp(x->dc, ms[i].dc) != 0)
                continue;
            if (!x->reachable) {
                printf("  node %-3lld %-15s %-21s unreachable: %s\n", x->id, "-", x->admin,
                       x->reason);
                continue;
            }
            char lag[32] = "-";
            if (lm != NULL)
                snprintf(lag, sizeof(lag), "%lld", commit > x->applied ? commit - x->applied : 0);
            printf("  node %-3lld %-15s %-21s applied %-8lld lag %-6s %s%s%s\n", x->id,
                   strcmp(x->role, "leader") == 0 ? "LEADER" : x->role, x->admin, x->applied, lag,
                   x->ready ? "ready" : "NOT READY", x->ready ? "" : ": ", x->reason);
        }
    }
    return lm != NULL ? 0 : 3;
}
