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
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/internal.h"
#include "hsm/pinfile.h"
#include "proto/err.h"

#define MAX_MEMBERS 16

struct member {
    long long id;
    char dc[64];
    char admin[128];
    int reachable, ready;
    char role[32];
    long long applied, commit, term, leader;
    long long contact; /* ms since the leader last heard from it (its status page); -1 unknown */
    char reason[300];
};

static const char usage_text[] =
    "usage: bkv-admin status --admin HOST:PORT [--timeout SECONDS]\n"
    "\n"
    "Draws the cluster: every member (from the first node's /v1/status) by data\n"
    "center, with its role, applied index, lag behind the leader's commit index,\n"
    "how long ago the leader last heard from it, and health (/readyz). --admin is\n"
    "any node's admin address.\n"
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

/* The leader's last contact with each member, from its status page. */
static void read_contacts(const char *leader_admin, struct member *ms, size_t n,
                          unsigned timeout_ms)
{
    char err[256];
    int status = 0;
    size_t i;
    json_t *m, *st = get_json(leader_admin, "/v1/status", timeout_ms, &status, err, sizeof(err));
    json_array_foreach(json_object_get(st, "members"), i, m)
    {
        json_t *c = json_object_get(m, "last_contact_ms");
        long long id = json_integer_value(json_object_get(m, "id"));
        for (size_t j = 0; j < n && json_is_integer(c); j++)
            if (ms[j].id == id)
                ms[j].contact = json_integer_value(c);
    }
    json_decref(st);
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
    for (i = 0; i < n; i++) {
        ms[i].contact = -1;
        if (ms[i].id == leader)
            lm = &ms[i];
    }
    if (lm != NULL)
        read_contacts(lm->admin, ms, n, timeout_ms);
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
                if (x->contact >= 0)
                    printf("  node %-3lld %-15s %-21s unreachable, leader's last contact %lldms "
                           "ago: %s\n",
                           x->id, "-", x->admin, x->contact, x->reason);
                else
                    printf("  node %-3lld %-15s %-21s unreachable: %s\n", x->id, "-", x->admin,
                           x->reason);
                continue;
            }
            char lag[32] = "-";
            if (lm != NULL)
                snprintf(lag, sizeof(lag), "%lld", commit > x->applied ? commit - x->applied : 0);
            char contact[32] = "-";
            if (x->contact >= 0)
                snprintf(contact, sizeof(contact), "%lldms", x->contact);
            printf("  node %-3lld %-15s %-21s applied %-8lld lag %-6s contact %-8s %s%s%s\n", x->id,
                   strcmp(x->role, "leader") == 0 ? "LEADER" : x->role, x->admin, x->applied, lag,
                   contact, x->ready ? "ready" : "NOT READY", x->ready ? "" : ": ", x->reason);
        }
    }
    return lm != NULL ? 0 : 3;
}

/* --- members add|promote|remove, leader transfer ----------------------------------- */

static const char change_usage[] =
    "usage: bkv-admin members add --admin HOST:PORT --token-file F --id N --raft HOST:PORT\n"
    "       bkv-admin members promote --admin HOST:PORT --token-file F --id N\n"
    "       bkv-admin members remove --admin HOST:PORT --token-file F --id N\n"
    "       bkv-admin leader transfer --admin HOST:PORT --token-file F [--to N]\n"
    "\n"
    "Drive the leader's admin endpoint: --admin is any node's admin address (the\n"
    "command finds the leader through it), --token-file holds the admin token\n"
    "(the nodes' [admin] token_file; mode 0600). add makes a non-voter that\n"
    "receives the log; promote makes it a voter once it caught up; remove takes a\n"
    "member out (the leader too); transfer moves leadership to --to, or to the\n"
    "best voter. Exit status 0 when the change committed, 1 otherwise.\n";

int bkv_admin_change_main(const char *group, int argc, char **argv)
{
    static const struct option opts[] = {{"admin", required_argument, NULL, 'a'},
                                         {"token-file", required_argument, NULL, 'f'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"to", required_argument, NULL, 'i'},
                                         {"raft", required_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *first = NULL, *token_file = NULL, *id = NULL, *raft = NULL, *verb = argv[0];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            first = optarg;
            break;
        case 'f':
            token_file = optarg;
            break;
        case 'i':
            id = optarg;
            break;
        case 'r':
            raft = optarg;
            break;
        case 'h':
            fputs(change_usage, stdout);
            return 0;
        default:
            fputs(change_usage, stderr);
            return 2;
        }
    }
    char path[300];
    const char *method = "POST";
    int members = strcmp(group, "members") == 0;
    if (!members && (strcmp(verb, "transfer") != 0 || raft != NULL)) {
        fputs(change_usage, stderr);
        return 2;
    }
    if (members && raft != NULL && strcmp(verb, "add") != 0) {
        fputs(change_usage, stderr);
        return 2;
    }
    if (!members)
        snprintf(path, sizeof(path), "/v1/leader/transfer%s%s", id ? "?to=" : "", id ? id : "");
    else if (strcmp(verb, "add") == 0 && id != NULL && raft != NULL)
        snprintf(path, sizeof(path), "/v1/members?id=%s&raft=%s", id, raft);
    else if (strcmp(verb, "promote") == 0 && id != NULL)
        snprintf(path, sizeof(path), "/v1/members/%s/promote", id);
    else if (strcmp(verb, "remove") == 0 && id != NULL) {
        snprintf(path, sizeof(path), "/v1/members/%s", id);
        method = "DELETE";
    } else {
        fputs(change_usage, stderr);
        return 2;
    }
    if (first == NULL || token_file == NULL || optind != argc) {
        fputs(change_usage, stderr);
        return 2;
    }
    uint8_t token[256];
    size_t token_len = 0;
    char err[512], auth[300];
    if (bkv_hsm_pin_read(token_file, token, sizeof(token) - 1, &token_len, err, sizeof(err)) !=
        BKV_OK) {
        fprintf(stderr, "bkv-admin %s %s: %s\n", group, verb, err);
        return 1;
    }
    snprintf(auth, sizeof(auth), "Bearer %.*s", (int)token_len, (const char *)token);
    OPENSSL_cleanse(token, sizeof(token));
    struct bkv_client_http_request req = {.method = method, .path = path, .authorization = auth};
    struct bkv_client_http_response resp;
    char leader[128];
    int rc = BKV_OK;
    memset(&resp, 0, sizeof(resp));
    /* Find the leader's admin address through the given node; during an election (503, or a
     * 421 from a node that just lost leadership) look again, for up to 10 s. */
    for (int round = 0; round < 20; round++) {
        int status = 0;
        json_t *st = get_json(first, "/v1/status", 5000, &status, err, sizeof(err));
        json_t *ladmin = st ? json_object_get(json_object_get(st, "leader"), "admin") : NULL;
        snprintf(leader, sizeof(leader), "%s",
                 json_is_string(ladmin) ? json_string_value(ladmin) : first);
        json_decref(st);
        bkv_client_http_response_free(&resp);
        rc = bkv_client_http_do(leader, &req, 1 << 16, 30000, &resp, err, sizeof(err));
        if (rc == BKV_OK && resp.status != 503 && resp.status != 421)
            break;
        if (rc != BKV_OK && rc != BKV_ERR_IO)
            break; /* not a node restarting: a timeout or a malformed answer */
        usleep(500 * 1000);
    }
    OPENSSL_cleanse(auth, sizeof(auth));
    if (rc != BKV_OK) {
        fprintf(stderr, "bkv-admin %s %s: %s\n", group, verb, err);
        return 1;
    }
    int ok = resp.status == 200;
    fprintf(ok ? stdout : stderr, "%s%s %s via %s: HTTP %d: %.*s\n", ok ? "" : "bkv-admin ", group,
            verb, leader, resp.status, (int)resp.body_len, resp.body ? (char *)resp.body : "");
    bkv_client_http_response_free(&resp);
    return ok ? 0 : 1;
}
