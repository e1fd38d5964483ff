/*
 * The admin endpoint (admin.h): small JSON documents built with jansson on
 * the loop thread from what the Raft node, the store and the gateway report.
 * Nothing secret is in them: the state hash is a digest of sealed rows.
 */
#include "node/admin.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consensus/store.h"
#include "hsm/mac.h"
#include "hsm/p11.h"
#include "node/gateway.h"
#include "node/http.h"
#include "node/log.h"
#include "proto/err.h"
#include "proto/kdf.h"
#include "proto/util.h"

#ifndef BKV_VERSION
#define BKV_VERSION "0.5.0"
#endif

struct bkv_admin {
    struct bkv_admin_config c;
    struct bkv_http_server *http;
    /* The HSM probe: an account MAC on a worker every PROBE_MS. */
    uv_timer_t probe_timer;
    uv_work_t probe_work;
    int probe_busy, probe_rc, hsm_ok, closing, timer_closed, http_closed;
    char probe_msg[BKV_HSM_ERRMSG_LEN];
    uint64_t hsm_checked_ms;
    time_t started;
    /* The state hash reads every row: computed at most once per second, on a change. */
    uint64_t hash_applied;
    uint64_t hash_at_ms;
    char hash_hex[65];
    uint64_t live, tombstones;
    void (*close_cb)(void *);
    void *close_data;
};

static const char *role_name(enum bkv_raft_role role)
{
    switch (role) {
    case BKV_RAFT_FOLLOWER:
        return "follower";
    case BKV_RAFT_CANDIDATE:
        return "candidate";
    case BKV_RAFT_LEADER:
        return "leader-pending";
    case BKV_RAFT_LEADER_READY:
        return "leader";
    case BKV_RAFT_UNAVAILABLE:
        return "unavailable";
    }
    return "unknown";
}

static void respond_json(struct bkv_http_exchange *ex, int status, json_t *doc)
{
    static const struct bkv_http_header ct[] = {{"Content-Type", "application/json"}};
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (text == NULL) {
        bkv_http_respond_text(ex, 500, NULL, 0, "cannot format JSON");
        return;
    }
    bkv_http_respond(ex, status, ct, 1, text, strlen(text));
    free(text);
}

#define PROBE_MS 2000

static void probe_work(uv_work_t *w)
{
    struct bkv_admin *a = w->data;
    static const uint8_t label[] = "BKV-HSM-HEALTH-PROBE";
    uint8_t mac[BKV_HSM_MAC_LEN];
    a->probe_rc = bkv_hsm_account_mac(a->c.hsm, label, sizeof(label) - 1, mac);
    if (a->probe_rc != BKV_OK)
        snprintf(a->probe_msg, sizeof(a->probe_msg), "%s", bkv_hsm_errmsg(a->c.hsm));
}

static void maybe_free(struct bkv_admin *a);

static void probe_done(uv_work_t *w, int status)
{
    struct bkv_admin *a = w->data;
    a->probe_busy = 0;
    int ok = status == 0 && a->probe_rc == BKV_OK;
    if (ok != a->hsm_ok) {
        if (ok)
            bkv_log(BKV_LOG_INFO, "hsm: token answers again");
        else
            bkv_log(BKV_LOG_ERROR, "hsm: health probe failed: %s", a->probe_msg);
    }
    a->hsm_ok = ok;
    a->hsm_checked_ms = uv_now(a->c.loop);
    maybe_free(a);
}

static void probe_tick(uv_timer_t *t)
{
    struct bkv_admin *a = t->data;
    if (a->probe_busy || a->closing)
        return;
    a->probe_busy = 1;
    a->probe_work.data = a;
    if (uv_queue_work(a->c.loop, &a->probe_work, probe_work, probe_done) != 0)
        a->probe_busy = 0;
}

/* NULL when ready, else the reason. */
static const char *not_ready(struct bkv_admin *a)
{
    uint64_t id = 0;
    const char *addr = NULL;
    struct bkv_raft_info info;
    enum bkv_raft_role role = bkv_raft_role(a->c.raft);
    if (role == BKV_RAFT_UNAVAILABLE)
        return "the Raft instance is unavailable";
    if (!a->hsm_ok)
        return "the HSM token does not answer (see the node's log)";
    if (a->probe_busy && uv_now(a->c.loop) - a->hsm_checked_ms > 3 * PROBE_MS)
        return "the HSM health probe has hung for more than 6 s";
    bkv_raft_leader(a->c.raft, &id, &addr);
    if (id == 0)
        return "no known leader";
    if (role == BKV_RAFT_LEADER)
        return "leader waiting for the barrier of its term";
    bkv_raft_info(a->c.raft, &info);
    uint64_t lag =
        info.commit_index > info.applied_index ? info.commit_index - info.applied_index : 0;
    if (lag > (a->c.max_lag ? a->c.max_lag : 100))
        return "applied index lags the commit index";
    return NULL;
}

/* The store's counts and state hash read every row: at most once a second, on a change. */
static void refresh_state(struct bkv_admin *a, const struct bkv_raft_info *info)
{
    uint64_t live = 0, tomb = 0;
    uint8_t hash[32];
    struct bkv_store *st = bkv_raft_store(a->c.raft);
    uint64_t now = uv_now(a->c.loop);
    if (st != NULL && (a->hash_hex[0] == '\0' ||
                       (info->applied_index != a->hash_applied && now - a->hash_at_ms >= 1000))) {
        if (bkv_store_counts(st, &live, &tomb) == BKV_OK && bkv_store_hash(st, hash) == BKV_OK) {
            bkv_hex_encode(hash, sizeof(hash), a->hash_hex);
            a->live = live;
            a->tombstones = tomb;
            a->hash_applied = info->applied_index;
            a->hash_at_ms = now;
        }
    }
}

static json_t *status_doc(struct bkv_admin *a)
{
    struct bkv_raft_info info;
    uint64_t lid = 0, live = 0, tomb = 0;
    const char *laddr = NULL;
    char hex[65] = "";
    bkv_raft_info(a->c.raft, &info);
    bkv_raft_leader(a->c.raft, &lid, &laddr);
    refresh_state(a, &info);
    memcpy(hex, a->hash_hex, sizeof(hex));
    live = a->live;
    tomb = a->tombstones;
    const struct bkv_conf_member *lm = lid != 0 ? bkv_node_config_member(a->c.cfg, lid) : NULL;
    /* Members: the Raft configuration, with what this node's file knows about each. */
    static const char *const roles[] = {"", "voter", "standby", "spare"};
    struct bkv_raft_server srv[BKV_RAFT_MAX_MEMBERS];
    size_t ns = bkv_raft_servers(a->c.raft, srv, BKV_RAFT_MAX_MEMBERS);
    json_t *members = json_array();
    for (size_t i = 0; i < ns; i++) {
        const struct bkv_conf_member *m = bkv_node_config_member(a->c.cfg, srv[i].id);
        json_t *o = json_pack("{s:I,s:s,s:s}", "id", (json_int_t)srv[i].id, "raft", srv[i].address,
                              "role", roles[srv[i].role]);
        json_object_set_new(o, "dc", m ? json_string(m->dc) : json_null());
        json_object_set_new(o, "gateway", m ? json_string(m->gateway) : json_null());
        json_object_set_new(o, "admin", m ? json_string(m->admin) : json_null());
        if (srv[i].has_match) {
            json_object_set_new(o, "match_index", json_integer((json_int_t)srv[i].match_index));
            json_object_set_new(o, "lag",
                                json_integer((json_int_t)(info.last_index > srv[i].match_index
                                                              ? info.last_index - srv[i].match_index
                                                              : 0)));
            json_object_set_new(o, "last_contact_ms",
                                srv[i].contact_ms == UINT64_MAX
                                    ? json_null()
                                    : json_integer((json_int_t)srv[i].contact_ms));
        }
        json_array_append_new(members, o);
    }
    const struct bkv_gateway_stats *gs = a->c.gateway ? bkv_gateway_stats(a->c.gateway) : NULL;
    json_t *doc = json_pack(
        "{s:I,s:s,s:s,s:I,s:{s:I,s:o,s:o,s:o},s:I,s:I,s:I,s:{s:I,s:I,s:s,s:I},s:I,s:{s:s,"
        "s:s},s:o,s:s,s:I}",
        "id", (json_int_t)a->c.cfg->id, "dc", a->c.cfg->dc, "role",
        role_name(bkv_raft_role(a->c.raft)), "term", (json_int_t)info.term, "leader", "id",
        (json_int_t)lid, "address", laddr ? json_string(laddr) : json_null(), "gateway",
        lm ? json_string(lm->gateway) : json_null(), "admin",
        lm ? json_string(lm->admin) : json_null(), "commit_index", (json_int_t)info.commit_index,
        "applied_index", (json_int_t)info.applied_index, "last_index", (json_int_t)info.last_index,
        "store", "records", (json_int_t)live, "tombstones", (json_int_t)tomb, "state_hash", hex,
        "state_index", (json_int_t)a->hash_applied, "login_sessions",
        (json_int_t)(gs ? gs->sessions : 0), "hsm", "token", bkv_hsm_label(a->c.hsm), "state",
        a->hsm_ok ? "ok" : "failing", "members", members, "version", BKV_VERSION, "uptime_s",
        (json_int_t)(time(NULL) - a->started));
    /* How long ago this node heard from the leader (0 on the leader; null without one). */
    if (doc != NULL)
        json_object_set_new(doc, "leader_contact_ms",
                            info.leader_contact_ms == UINT64_MAX
                                ? json_null()
                                : json_integer((json_int_t)info.leader_contact_ms));
    return doc;
}

/* --- /metrics: the Prometheus text format, version 0.0.4 ---------------------------- */

struct text {
    char *p;
    size_t len, cap;
    int failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct text *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        size_t room = t->cap - t->len;
        va_start(ap, fmt);
        int n = t->failed ? 0 : vsnprintf(t->p + t->len, room, fmt, ap);
        va_end(ap);
        if (t->failed || n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)n;
        char *p = realloc(t->p, cap);
        if (p == NULL) {
            t->failed = 1;
            return;
        }
        t->p = p;
        t->cap = cap;
    }
}

static void family(struct text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histogram(struct text *t, const char *name, const char *labels,
                      const struct bkv_histogram *h)
{
    uint64_t cum = 0;
    const char *sep = labels[0] != '\0' ? "," : "";
    for (size_t i = 0; i < BKV_HIST_BUCKETS; i++) {
        cum += h->buckets[i];
        put(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, bkv_hist_bounds[i],
            (unsigned long long)cum);
    }
    put(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)h->count);
    put(t, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "", h->sum);
    put(t, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels, labels[0] ? "}" : "",
        (unsigned long long)h->count);
}

static void metrics(struct bkv_admin *a, struct text *t)
{
    static const char *const types[] = {"",           "reg_init",     "reg_finish",
                                        "login_init", "login_finish", "delete"};
    static const char *const statuses[] = {
        "ok",       "wrong_password", "destroyed",  "not_registered", "session_unknown",
        "replayed", "bad_request",    "unavailable"};
    static const char *const http[] = {"400", "401", "403", "421", "503", "5xx"};
    static const char *const ops[] = {"decap", "account_mac", "seal", "unseal"};
    static const char *const roles[] = {"follower", "candidate", "leader_pending", "leader",
                                        "unavailable"};
    struct bkv_raft_info info;
    bkv_raft_info(a->c.raft, &info);
    refresh_state(a, &info);
    const struct bkv_gateway_stats *gs = a->c.gateway ? bkv_gateway_stats(a->c.gateway) : NULL;
    static const struct bkv_gateway_stats zero;
    if (gs == NULL)
        gs = &zero;

    family(t, "bkv_requests_total", "counter",
           "Vault requests answered by this node's gateway, by type and outcome.");
    for (size_t ty = 1; ty <= BKV_MSG_DELETE; ty++)
        for (size_t st = 0; st <= BKV_MSG_UNAVAILABLE; st++)
            put(t, "bkv_requests_total{type=\"%s\",outcome=\"%s\"} %llu\n", types[ty], statuses[st],
                (unsigned long long)gs->requests[ty][st]);
    family(t, "bkv_http_errors_total", "counter",
           "Gateway requests answered with an HTTP error, by status.");
    for (size_t i = 0; i < 6; i++)
        put(t, "bkv_http_errors_total{code=\"%s\"} %llu\n", http[i],
            (unsigned long long)gs->http_errors[i]);
    family(t, "bkv_request_duration_seconds", "histogram",
           "Time from a gateway request's arrival to its answer, by type.");
    for (size_t ty = 1; ty <= BKV_MSG_DELETE; ty++) {
        char label[32];
        snprintf(label, sizeof(label), "type=\"%s\"", types[ty]);
        histogram(t, "bkv_request_duration_seconds", label, &gs->latency[ty]);
    }
    family(t, "bkv_commit_duration_seconds", "histogram",
           "Time from proposing a command to its applied result.");
    histogram(t, "bkv_commit_duration_seconds", "", &gs->commit);
    family(t, "bkv_login_attempts_total", "counter", "Login attempts committed and counted.");
    put(t, "bkv_login_attempts_total %llu\n", (unsigned long long)gs->attempts);
    family(t, "bkv_lockouts_total", "counter",
           "Records destroyed by a wrong KE3 at the guess limit on this node.");
    put(t, "bkv_lockouts_total %llu\n", (unsigned long long)gs->lockouts);
    family(t, "bkv_registrations_total", "counter", "Registrations committed.");
    put(t, "bkv_registrations_total %llu\n", (unsigned long long)gs->registrations);
    family(t, "bkv_ke2_sent_total", "counter", "KE2 messages sent after a counted attempt.");
    put(t, "bkv_ke2_sent_total %llu\n", (unsigned long long)gs->ke2_sent);
    family(t, "bkv_keys_released_total", "counter", "Wrapped keys released after a valid KE3.");
    put(t, "bkv_keys_released_total %llu\n", (unsigned long long)gs->keys_released);
    family(t, "bkv_login_sessions", "gauge", "Login sessions held in memory.");
    put(t, "bkv_login_sessions %llu\n", (unsigned long long)gs->sessions);

    family(t, "bkv_raft_term", "gauge", "Current Raft term.");
    put(t, "bkv_raft_term %llu\n", (unsigned long long)info.term);
    family(t, "bkv_raft_role", "gauge", "1 for this node's current Raft role.");
    enum bkv_raft_role role = bkv_raft_role(a->c.raft);
    for (int r = BKV_RAFT_FOLLOWER; r <= BKV_RAFT_UNAVAILABLE; r++)
        put(t, "bkv_raft_role{role=\"%s\"} %d\n", roles[r - 1], r == (int)role);
    family(t, "bkv_raft_commit_index", "gauge", "Highest log index known to be committed.");
    put(t, "bkv_raft_commit_index %llu\n", (unsigned long long)info.commit_index);
    family(t, "bkv_raft_applied_index", "gauge", "Highest log index applied to the store.");
    put(t, "bkv_raft_applied_index %llu\n", (unsigned long long)info.applied_index);
    family(t, "bkv_raft_snapshots_taken_total", "counter", "Snapshots taken since start.");
    put(t, "bkv_raft_snapshots_taken_total %lu\n", info.snapshots_taken);
    family(t, "bkv_raft_snapshots_restored_total", "counter",
           "Snapshot images installed into the store since start.");
    put(t, "bkv_raft_snapshots_restored_total %lu\n", info.snapshots_restored);
    family(t, "bkv_raft_installs_held_total", "counter",
           "InstallSnapshot messages held back while a snapshot was being taken.");
    put(t, "bkv_raft_installs_held_total %lu\n", info.installs_held);

    family(t, "bkv_hsm_operations_total", "counter", "HSM operations, by kind.");
    for (size_t i = 0; i < BKV_HSM_OP__N; i++)
        put(t, "bkv_hsm_operations_total{op=\"%s\"} %llu\n", ops[i],
            (unsigned long long)__atomic_load_n(&gs->hsm_ops[i], __ATOMIC_RELAXED));
    family(t, "bkv_hsm_errors_total", "counter", "HSM operations that failed, by kind.");
    for (size_t i = 0; i < BKV_HSM_OP__N; i++)
        put(t, "bkv_hsm_errors_total{op=\"%s\"} %llu\n", ops[i],
            (unsigned long long)__atomic_load_n(&gs->hsm_errors[i], __ATOMIC_RELAXED));
    family(t, "bkv_store_records", "gauge", "Live records (as of the last state hash).");
    put(t, "bkv_store_records %llu\n", (unsigned long long)a->live);
    family(t, "bkv_store_tombstones", "gauge", "Destroyed records (as of the last state hash).");
    put(t, "bkv_store_tombstones %llu\n", (unsigned long long)a->tombstones);
    family(t, "bkv_start_time_seconds", "gauge", "Unix time this node started.");
    put(t, "bkv_start_time_seconds %lld\n", (long long)a->started);
}

/* --- changing operations ------------------------------------------------------------- */

struct op {
    struct bkv_admin *a;
    struct bkv_http_exchange *ex;
    char what[256];
};

static void respond_result(struct bkv_http_exchange *ex, int status, const char *what, int rc,
                           const char *msg)
{
    json_t *doc = rc == BKV_OK ? json_pack("{s:b,s:s}", "ok", 1, "done", what)
                               : json_pack("{s:b,s:s,s:s}", "ok", 0, "error", bkv_strerror(rc),
                                           "detail", msg != NULL ? msg : "");
    respond_json(ex, status, doc);
}

static void op_done(void *data, int status, const char *msg)
{
    struct op *o = data;
    bkv_log(status == BKV_OK ? BKV_LOG_INFO : BKV_LOG_WARN, "admin: %s: %s%s%s", o->what,
            status == BKV_OK ? "done" : bkv_strerror(status), status == BKV_OK ? "" : ": ",
            status == BKV_OK ? "" : msg);
    respond_result(o->ex,
                   status == BKV_OK          ? 200
                   : status == BKV_ERR_LIMIT ? 504
                                             : 409,
                   o->what, status, msg);
    free(o);
}

/* 1 if the request carries the admin token (compared in constant time, on digests). */
static int authorized(struct bkv_admin *a, const struct bkv_http_request *req)
{
    const char *h = bkv_http_header_get(req->headers, req->n_headers, "authorization");
    if (a->c.token_len == 0 || h == NULL || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    uint8_t want[32], got[32];
    struct bkv_buf w = {a->c.token, a->c.token_len}, g = {(const uint8_t *)h + 7, strlen(h) - 7};
    if (bkv_sha256(&w, 1, want) != BKV_OK || bkv_sha256(&g, 1, got) != BKV_OK)
        return 0;
    return bkv_ct_equal(want, got, sizeof(want));
}

/* The value of key in the query string of path into out: 1 if present and fits, else 0. */
static int query(const char *path, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    const char *q = strchr(path, '?');
    size_t kl = strlen(key);
    while (q != NULL) {
        q++;
        if (strncmp(q, key, kl) == 0 && q[kl] == '=') {
            size_t n = strcspn(q + kl + 1, "&");
            if (n >= cap)
                return 0;
            memcpy(out, q + kl + 1, n);
            out[n] = '\0';
            return 1;
        }
        q = strchr(q, '&');
    }
    return 0;
}

static int parse_id(const char *s, uint64_t *id)
{
    char *end;
    if (s[0] < '0' || s[0] > '9')
        return 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' && *end != '/' && *end != '?')
        return 0;
    *id = v;
    return v >= 1 && v <= (1ull << 53);
}

static void change(struct bkv_admin *a, struct bkv_http_exchange *ex,
                   const struct bkv_http_request *req)
{
    const char *p = req->path;
    int post = strcmp(req->method, "POST") == 0, del = strcmp(req->method, "DELETE") == 0;
    if (!authorized(a, req)) {
        struct bkv_http_header h[] = {{"WWW-Authenticate", "Bearer"}};
        bkv_http_respond_text(ex, 401, h, 1,
                              a->c.token_len == 0
                                  ? "changing operations are disabled: this node has no [admin] "
                                    "token_file"
                                  : "missing or wrong admin token; nothing was changed");
        return;
    }
    if (bkv_raft_role(a->c.raft) != BKV_RAFT_LEADER_READY) {
        uint64_t lid = 0;
        const char *laddr = NULL;
        bkv_raft_leader(a->c.raft, &lid, &laddr);
        const struct bkv_conf_member *m = lid ? bkv_node_config_member(a->c.cfg, lid) : NULL;
        if (m != NULL && lid != a->c.cfg->id) {
            struct bkv_http_header h[] = {{"X-BKV-Leader-Admin", m->admin}};
            bkv_http_respond_text(ex, 421, h, 1, "not the leader: ask the one named");
        } else {
            struct bkv_http_header h[] = {{"Retry-After", "1"}};
            bkv_http_respond_text(ex, 503, h, 1, "no ready leader known; retry");
        }
        return;
    }
    struct op *o = calloc(1, sizeof(*o));
    if (o == NULL) {
        bkv_http_respond_text(ex, 500, NULL, 0, "out of memory");
        return;
    }
    o->a = a;
    o->ex = ex;
    uint64_t id = 0;
    char to[32], raft[128];
    int rc = BKV_ERR_INVALID;
    if (post && strncmp(p, "/v1/leader/transfer", 19) == 0 && (p[19] == '\0' || p[19] == '?')) {
        int given = query(p, "to", to, sizeof(to)) || strstr(p, "to=") != NULL;
        if (!given || parse_id(to, &id)) {
            snprintf(o->what, sizeof(o->what), "leader transfer to %s",
                     to[0] ? to : "the best voter");
            rc = bkv_raft_leader_transfer(a->c.raft, id, op_done, o);
        }
    } else if (post && strcmp(p, "/v1/snapshot") == 0) {
        snprintf(o->what, sizeof(o->what), "snapshot now");
        rc = bkv_raft_snapshot_now(a->c.raft, op_done, o);
    } else if (post && strncmp(p, "/v1/members?", 12) == 0) {
        const struct bkv_conf_member *m = NULL;
        if (query(p, "id", to, sizeof(to)) && query(p, "raft", raft, sizeof(raft)) &&
            parse_id(to, &id) && bkv_conf_address_valid(raft))
            m = bkv_node_config_member(a->c.cfg, id);
        if (m == NULL || strcmp(m->raft, raft) != 0) {
            free(o);
            bkv_http_respond_text(ex, 400, NULL, 0,
                                  "add: id and raft must name a [member N] of the nodes' "
                                  "configuration files (initial = no) with that raft address; "
                                  "nothing was changed");
            return;
        }
        {
            snprintf(o->what, sizeof(o->what), "add node %llu (%s) as a non-voter",
                     (unsigned long long)id, raft);
            rc = bkv_raft_member_add(a->c.raft, id, raft, op_done, o);
        }
    } else if (strncmp(p, "/v1/members/", 12) == 0 && parse_id(p + 12, &id)) {
        const char *rest = strchr(p + 12, '/');
        if (post && rest != NULL && strcmp(rest, "/promote") == 0) {
            snprintf(o->what, sizeof(o->what), "promote node %llu to voter",
                     (unsigned long long)id);
            rc = bkv_raft_member_promote(a->c.raft, id, op_done, o);
        } else if (del && rest == NULL) {
            snprintf(o->what, sizeof(o->what), "remove node %llu", (unsigned long long)id);
            rc = bkv_raft_member_remove(a->c.raft, id, op_done, o);
        } else {
            free(o);
            bkv_http_respond_text(ex, 404, NULL, 0, "no such operation");
            return;
        }
    } else {
        free(o);
        bkv_http_respond_text(ex, 404, NULL, 0,
                              "no such operation; see docs/operations.md (admin endpoint)");
        return;
    }
    if (rc != BKV_OK) {
        const char *msg = o->what[0] ? bkv_raft_errmsg(a->c.raft) : "bad id or address";
        respond_result(ex, rc == BKV_ERR_NOT_LEADER ? 421 : 400, o->what, rc, msg);
        free(o);
    }
}

static void handle(struct bkv_http_exchange *ex, const struct bkv_http_request *req, void *data)
{
    struct bkv_admin *a = data;
    if (strcmp(req->method, "POST") == 0 || strcmp(req->method, "DELETE") == 0) {
        change(a, ex, req);
        return;
    }
    if (strcmp(req->method, "GET") != 0) {
        struct bkv_http_header h[] = {{"Allow", "GET, POST, DELETE"}};
        bkv_http_respond_text(ex, 405, h, 1, "the admin endpoint's pages are read with GET");
        return;
    }
    if (strcmp(req->path, "/livez") == 0) {
        bkv_http_respond_text(ex, 200, NULL, 0, "ok");
    } else if (strcmp(req->path, "/readyz") == 0) {
        const char *why = not_ready(a);
        if (why == NULL)
            respond_json(ex, 200, json_pack("{s:b}", "ready", 1));
        else
            respond_json(ex, 503, json_pack("{s:b,s:s}", "ready", 0, "reason", why));
    } else if (strcmp(req->path, "/metrics") == 0) {
        static const struct bkv_http_header ct[] = {
            {"Content-Type", "text/plain; version=0.0.4; charset=utf-8"}};
        struct text t = {malloc(16384), 0, 16384, 0};
        t.failed = t.p == NULL;
        metrics(a, &t);
        if (t.failed)
            bkv_http_respond_text(ex, 500, NULL, 0, "cannot format the metrics");
        else
            bkv_http_respond(ex, 200, ct, 1, t.p, t.len);
        free(t.p);
    } else if (strcmp(req->path, "/v1/status") == 0) {
        json_t *doc = status_doc(a);
        if (doc == NULL)
            bkv_http_respond_text(ex, 500, NULL, 0, "cannot build the status");
        else
            respond_json(ex, 200, doc);
    } else {
        bkv_http_respond_text(ex, 404, NULL, 0,
                              "no such page; try /livez, /readyz, /metrics, /v1/status");
    }
}

int bkv_admin_start(const struct bkv_admin_config *cfg, struct bkv_admin **out, char *err,
                    size_t err_cap)
{
    struct bkv_admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return BKV_ERR_NOMEM;
    a->c = *cfg;
    a->started = time(NULL);
    a->hsm_ok = 1; /* bkv_hsm_open and the realm check just passed */
    a->hsm_checked_ms = uv_now(cfg->loop);
    struct bkv_http_server_config hc = {.address = cfg->cfg->admin, .max_body = 4096};
    int rc = bkv_http_server_start(cfg->loop, &hc, handle, a, &a->http, err, err_cap);
    if (rc != BKV_OK) {
        free(a);
        return rc;
    }
    uv_timer_init(cfg->loop, &a->probe_timer);
    a->probe_timer.data = a;
    uv_timer_start(&a->probe_timer, probe_tick, PROBE_MS, PROBE_MS);
    *out = a;
    return BKV_OK;
}

static void maybe_free(struct bkv_admin *a)
{
    if (!a->closing || a->probe_busy || !a->timer_closed || !a->http_closed)
        return;
    void (*cb)(void *) = a->close_cb;
    void *cb_data = a->close_data;
    free(a);
    if (cb != NULL)
        cb(cb_data);
}

static void http_closed(void *data)
{
    struct bkv_admin *a = data;
    a->http_closed = 1;
    maybe_free(a);
}

static void timer_closed(uv_handle_t *h)
{
    struct bkv_admin *a = h->data;
    a->timer_closed = 1;
    maybe_free(a);
}

void bkv_admin_close(struct bkv_admin *a, void (*cb)(void *data), void *data)
{
    OPENSSL_cleanse(a->c.token, sizeof(a->c.token));
    a->close_cb = cb;
    a->close_data = data;
    a->closing = 1;
    uv_close((uv_handle_t *)&a->probe_timer, timer_closed);
    bkv_http_server_close(a->http, http_closed, a);
}
