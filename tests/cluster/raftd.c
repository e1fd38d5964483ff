/*
 * bkv-raftd: one consensus node (consensus/node.h) as a real process, for the
 * cluster tests. It is a test tool, not the vault node: the
 * commands' sealed fields are whatever hex the control client sends.
 *
 *   bkv-raftd --id N --raft ADDR --data DIR --control ADDR
 *             [--member ID@DC@ADDR[@SNAPSHOT_ADDR]]... [--snapshot ADDR]
 *             [--dc DC] [--bootstrap] [--max-attempts N] [--snapshot-threshold N]
 *             [--snapshot-trailing N] [--snapshot-fetch-timeout MS]
 *             [--election-timeout MS] [--heartbeat MS]
 *
 * --snapshot ADDR is this node's snapshot image server; every member of a
 * cluster of two or more needs one (consensus/node.h), given as the fourth
 * field of its --member.
 *
 * --max-attempts N (1..1000000, default 10) goes into every REGISTER this
 * node proposes: the limit is replicated with the record, and ATTEMPTs are
 * counted against the record's own limit whichever node proposes them.
 *
 * The control port (loopback TCP) speaks one request per line, one reply line
 * per request, in request order; many requests may be in flight on one
 * connection. A request may start with a tag "#T " that its reply repeats.
 *
 *   ATTEMPT <account-hex64> <reqid-hex32>
 *   REGISTER <account-hex64> <reqid-hex32> <record-hex|-> <wrapped-hex|->
 *   SUCCESS <account-hex64> <reqid-hex32> <registration>
 *   DELETE <account-hex64> <reqid-hex32>
 *     -> OK <RESULT> attempts=A max=M reg=R replayed=0|1
 *      | NOTLEADER id=I addr=ADDR | NOTREADY | LOST | ERR <text>
 *   STATUS -> id=.. role=.. term=.. applied=.. commit=.. last=.. store_applied=..
 *             leader=.. live=.. tombstones=.. snapshots=.. restored=.. fetched=..
 *             served=.. image_size=.. hash=<hex64>
 *   COUNTER <account-hex64> -> attempts=A live=1|0|none reg=R
 *   QUIT -> BYE (and the connection closes)
 *
 * The parser is total: long lines, bad hex and unknown verbs get ERR.
 * Exit status: 0 after SIGTERM/SIGINT (clean close), 1 when the node cannot
 * start (bad options, unusable data directory), 3 when raft becomes
 * unavailable (the reason goes to stderr). Single-threaded: one libuv loop.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "consensus/node.h"
#include "consensus/store.h"
#include "proto/err.h"
#include "proto/util.h"

#define MAX_LINE         32768 /* two 4096-byte sealed blobs in hex fit */
#define MAX_OPS_PER_CONN 8192  /* stop reading beyond this many unanswered requests */
#define REPLY_LEN        512
#define TAG_LEN          40
#define MAX_ARGS         6 /* a tag, the verb and four arguments */

struct server;

/* One request, from its line to its reply. */
struct op {
    struct bkv_raft_propose req;
    struct conn *c;
    struct op *next;
    bool done, quit;
    char tag[TAG_LEN];
    char reply[REPLY_LEN];
};

struct conn {
    uv_tcp_t tcp;
    struct server *srv;
    struct conn *prev, *next;
    struct op *head, *tail; /* replies in request order */
    size_t n_ops;
    bool paused, closing, handle_closed, discarding, quitting;
    uv_shutdown_t shutdown;
    size_t in_len;
    char in[MAX_LINE + 1];
};

struct server {
    uv_loop_t *loop;
    struct bkv_raft *raft;
    struct bkv_raft_config cfg;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint;
    uv_timer_t watchdog;
    struct conn *conns;
    bool stopping, nospace_logged;
    int exit_code;
};

static const char *result_name(enum bkv_cmd_status s)
{
    switch (s) {
    case BKV_CMD_REGISTERED:
        return "REGISTERED";
    case BKV_CMD_COUNTED:
        return "COUNTED";
    case BKV_CMD_DESTROYED:
        return "DESTROYED";
    case BKV_CMD_NOT_FOUND:
        return "NOT_FOUND";
    case BKV_CMD_RESET:
        return "RESET";
    case BKV_CMD_STALE:
        return "STALE";
    case BKV_CMD_DELETED:
        return "DELETED";
    }
    return "UNKNOWN";
}

static const char *role_name(enum bkv_raft_role role)
{
    switch (role) {
    case BKV_RAFT_FOLLOWER:
        return "follower";
    case BKV_RAFT_CANDIDATE:
        return "candidate";
    case BKV_RAFT_LEADER:
        return "leader-barrier";
    case BKV_RAFT_LEADER_READY:
        return "leader";
    case BKV_RAFT_UNAVAILABLE:
        return "unavailable";
    }
    return "unknown";
}

/* ---- connections and replies ---- */

struct wreq {
    uv_write_t w;
    uv_buf_t buf;
    char data[];
};

static void conn_close(struct conn *c);

static void write_cb(uv_write_t *w, int status)
{
    struct wreq *wr = (struct wreq *)w;
    struct conn *c = w->data;

    free(wr);
    if (status != 0)
        conn_close(c);
}

static void conn_free_if_idle(struct conn *c)
{
    if (c->handle_closed && c->n_ops == 0)
        free(c);
}

static void conn_resume(struct conn *c);

/* The BYE went out (uv_shutdown waits for queued writes): close. */
static void shutdown_cb(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

/* Send (or, on a closed connection, drop) the answered prefix of the queue. */
static void flush_replies(struct conn *c)
{
    size_t len = 0;
    struct wreq *wr = NULL;
    bool quit = false;

    for (struct op *o = c->head; o != NULL && o->done; o = o->next)
        len += strlen(o->tag) + strlen(o->reply) + 1;
    if (len == 0)
        return;
    if (!c->closing) {
        wr = malloc(sizeof(*wr) + len + 1); /* sprintf ends with a NUL */
        if (wr == NULL)
            conn_close(c);
    }
    len = 0;
    while (c->head != NULL && c->head->done) {
        struct op *o = c->head;
        if (o->quit)
            quit = true;
        if (wr != NULL)
            len += (size_t)sprintf(wr->data + len, "%s%s\n", o->tag, o->reply);
        c->head = o->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->n_ops--;
        free(o);
    }
    if (wr != NULL) {
        wr->buf = uv_buf_init(wr->data, (unsigned)len);
        wr->w.data = c;
        if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &wr->buf, 1, write_cb) != 0) {
            free(wr);
            conn_close(c);
        }
    }
    if (quit && !c->closing && uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, shutdown_cb) != 0)
        conn_close(c);
    if (c->paused && !c->closing && !c->quitting && c->n_ops < MAX_OPS_PER_CONN / 2)
        conn_resume(c);
    conn_free_if_idle(c);
}

static struct op *op_new(struct conn *c, const char *tag)
{
    struct op *o = calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    o->c = c;
    snprintf(o->tag, sizeof(o->tag), "%s", tag);
    if (c->tail != NULL)
        c->tail->next = o;
    else
        c->head = o;
    c->tail = o;
    c->n_ops++;
    return o;
}

static void op_reply(struct op *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void op_reply(struct op *o, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(o->reply, sizeof(o->reply), fmt, ap);
    va_end(ap);
    o->done = true;
}

/* The reply for a proposal that did not produce results. */
static void reply_error(struct op *o, struct server *srv, int status)
{
    uint64_t id = 0;
    const char *addr = NULL;

    switch (status) {
    case BKV_ERR_NOT_LEADER:
        bkv_raft_leader(srv->raft, &id, &addr);
        op_reply(o, "NOTLEADER id=%" PRIu64 " addr=%s", id, addr != NULL ? addr : "-");
        break;
    case BKV_ERR_NOT_READY:
        op_reply(o, "NOTREADY");
        break;
    case BKV_ERR_LEADERSHIP_LOST:
        op_reply(o, "LOST");
        break;
    case BKV_ERR_NOSPACE:
        if (!srv->nospace_logged)
            fprintf(stderr, "bkv-raftd: node %" PRIu64 ": disk full: %s\n", srv->cfg.id,
                    bkv_raft_errmsg(srv->raft));
        srv->nospace_logged = true;
        op_reply(o, "ERR nospace: %s: %s", bkv_strerror(status), bkv_raft_errmsg(srv->raft));
        break;
    default:
        op_reply(o, "ERR %s", bkv_strerror(status));
        break;
    }
}

static void propose_cb(struct bkv_raft_propose *req, int status, const struct bkv_cmd_result *res,
                       size_t n)
{
    struct op *o = req->data;
    struct conn *c = o->c;

    if (status == BKV_OK && n == 1)
        op_reply(o, "OK %s attempts=%" PRIu32 " max=%" PRIu32 " reg=%" PRIu64 " replayed=%d",
                 result_name(res[0].status), res[0].attempts, res[0].max_attempts,
                 res[0].registration, res[0].replayed ? 1 : 0);
    else if (status == BKV_OK)
        op_reply(o, "ERR %zu results for one command", n);
    else
        reply_error(o, c->srv, status);
    flush_replies(c);
}

/* ---- parsing ---- */

static int hex_exact(const char *s, uint8_t *out, size_t want)
{
    size_t len = 0;

    if (s == NULL || strlen(s) != 2 * want)
        return BKV_ERR_LENGTH;
    if (bkv_hex_decode(s, out, want, &len) != BKV_OK || len != want)
        return BKV_ERR_FORMAT;
    return BKV_OK;
}

/* "-" is empty; otherwise 1..BKV_CMD_MAX_SEALED bytes of hex. */
static int hex_blob(const char *s, uint8_t *out, size_t *len)
{
    *len = 0;
    if (s == NULL)
        return BKV_ERR_FORMAT;
    if (strcmp(s, "-") == 0)
        return BKV_OK;
    if (strlen(s) > 2 * BKV_CMD_MAX_SEALED)
        return BKV_ERR_LENGTH;
    return bkv_hex_decode(s, out, BKV_CMD_MAX_SEALED, len);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return BKV_ERR_FORMAT;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return BKV_ERR_FORMAT;
    *out = v;
    return BKV_OK;
}

static void do_status(struct server *srv, struct op *o)
{
    struct bkv_raft_info info;
    struct bkv_store *st = bkv_raft_store(srv->raft);
    uint64_t live = 0, tomb = 0, leader = 0;
    uint8_t hash[32];
    char hex[65] = "error";

    bkv_raft_info(srv->raft, &info);
    bkv_raft_leader(srv->raft, &leader, NULL);
    if (bkv_store_counts(st, &live, &tomb) != BKV_OK)
        live = tomb = UINT64_MAX;
    if (bkv_store_hash(st, hash) == BKV_OK)
        bkv_hex_encode(hash, sizeof(hash), hex);
    op_reply(o,
             "id=%" PRIu64 " role=%s term=%" PRIu64 " applied=%" PRIu64 " commit=%" PRIu64
             " last=%" PRIu64 " store_applied=%" PRIu64 " leader=%" PRIu64 " live=%" PRIu64
             " tombstones=%" PRIu64 " snapshots=%lu restored=%lu fetched=%lu served=%lu"
             " held=%lu image_size=%" PRIu64 " hash=%s",
             srv->cfg.id, role_name(bkv_raft_role(srv->raft)), info.term, info.applied_index,
             info.commit_index, info.last_index, bkv_store_applied_index(st), leader, live, tomb,
             info.snapshots_taken, info.snapshots_restored, info.images_fetched, info.images_served,
             info.installs_held, info.image_size, hex);
}

static void do_counter(struct server *srv, struct op *o, const char *acct_hex)
{
    uint8_t acct[BKV_ACCOUNT_KEY_LEN];
    struct bkv_store_record rec;
    int found = 0, rc;

    if (hex_exact(acct_hex, acct, sizeof(acct)) != BKV_OK) {
        op_reply(o, "ERR bad account: want 64 hex digits");
        return;
    }
    memset(&rec, 0, sizeof(rec));
    rc = bkv_store_get(bkv_raft_store(srv->raft), acct, &rec, &found);
    if (rc != BKV_OK)
        op_reply(o, "ERR %s", bkv_strerror(rc));
    else if (!found)
        op_reply(o, "attempts=0 live=none reg=0");
    else
        op_reply(o, "attempts=%" PRIu32 " live=%d reg=%" PRIu64, rec.attempts, rec.live ? 1 : 0,
                 rec.registration);
    if (found)
        bkv_store_record_free(&rec);
}

/* A vault command: parse, propose, reply now on refusal or later from propose_cb. */
static void do_command(struct server *srv, struct op *o, enum bkv_cmd_type type, char **argv,
                       int argc)
{
    static uint8_t record[BKV_CMD_MAX_SEALED], wrapped[BKV_CMD_MAX_SEALED];
    struct bkv_cmd cmd;
    int want = type == BKV_CMD_REGISTER ? 4 : type == BKV_CMD_SUCCESS ? 3 : 2;
    int rc;

    if (argc != want) {
        op_reply(o, "ERR want %d arguments", want);
        return;
    }
    memset(&cmd, 0, sizeof(cmd));
    cmd.type = type;
    if (hex_exact(argv[0], cmd.account, sizeof(cmd.account)) != BKV_OK) {
        op_reply(o, "ERR bad account: want 64 hex digits");
        return;
    }
    if (hex_exact(argv[1], cmd.request_id, sizeof(cmd.request_id)) != BKV_OK) {
        op_reply(o, "ERR bad request id: want 32 hex digits");
        return;
    }
    if (type == BKV_CMD_REGISTER)
        cmd.max_attempts = srv->cfg.max_attempts; /* --max-attempts: replicated with the record */
    if (type == BKV_CMD_SUCCESS && parse_u64(argv[2], &cmd.registration) != BKV_OK) {
        op_reply(o, "ERR bad registration index");
        return;
    }
    if (type == BKV_CMD_REGISTER) {
        if (hex_blob(argv[2], record, &cmd.record_len) != BKV_OK ||
            hex_blob(argv[3], wrapped, &cmd.wrapped_len) != BKV_OK) {
            op_reply(o, "ERR bad sealed blob: want hex of 1..%d bytes or -", BKV_CMD_MAX_SEALED);
            return;
        }
        cmd.record = record;
        cmd.wrapped = wrapped;
    }
    o->req.data = o;
    rc = bkv_raft_propose(srv->raft, &o->req, &cmd, 1, propose_cb);
    if (rc == BKV_ERR_INVALID)
        op_reply(o, "ERR invalid command");
    else if (rc != BKV_OK)
        reply_error(o, srv, rc);
}

static void server_stop(struct server *srv, int code);

/* One line (NUL-terminated, no newline). */
static void handle_line(struct conn *c, char *line)
{
    struct server *srv = c->srv;
    char *argv[MAX_ARGS + 1], *save = NULL, *tok;
    const char *tag = "";
    char tagbuf[TAG_LEN];
    int argc = 0, first = 0;
    struct op *o;

    for (tok = strtok_r(line, " \t\r", &save); tok != NULL; tok = strtok_r(NULL, " \t\r", &save)) {
        if (argc <= MAX_ARGS)
            argv[argc] = tok;
        argc++; /* more than MAX_ARGS: refused below */
    }
    if (argc > 0 && argv[0][0] == '#') {
        if (strlen(argv[0]) < TAG_LEN - 1) {
            snprintf(tagbuf, sizeof(tagbuf), "%s ", argv[0]);
            tag = tagbuf;
        }
        first = 1;
    }
    o = op_new(c, tag);
    if (o == NULL) {
        conn_close(c);
        return;
    }
    if (argc > MAX_ARGS) {
        op_reply(o, "ERR too many arguments");
        flush_replies(c);
        return;
    }
    argc -= first;
    memmove(argv, argv + first, (size_t)argc * sizeof(argv[0]));
    if (argc <= 0) {
        op_reply(o, "ERR empty request");
    } else if (strcmp(argv[0], "ATTEMPT") == 0) {
        do_command(srv, o, BKV_CMD_ATTEMPT, argv + 1, argc - 1);
    } else if (strcmp(argv[0], "REGISTER") == 0) {
        do_command(srv, o, BKV_CMD_REGISTER, argv + 1, argc - 1);
    } else if (strcmp(argv[0], "SUCCESS") == 0) {
        do_command(srv, o, BKV_CMD_SUCCESS, argv + 1, argc - 1);
    } else if (strcmp(argv[0], "DELETE") == 0) {
        do_command(srv, o, BKV_CMD_DELETE, argv + 1, argc - 1);
    } else if (strcmp(argv[0], "STATUS") == 0 && argc == 1) {
        do_status(srv, o);
    } else if (strcmp(argv[0], "COUNTER") == 0 && argc == 2) {
        do_counter(srv, o, argv[1]);
    } else if (strcmp(argv[0], "QUIT") == 0 && argc == 1) {
        /* Answer what came before, then BYE, then close: nothing more is read. */
        op_reply(o, "BYE");
        o->quit = true;
        c->quitting = true;
        uv_read_stop((uv_stream_t *)&c->tcp);
    } else {
        op_reply(o, "ERR unknown request");
    }
    flush_replies(c);
}

/* Handle every complete line in the input buffer, unless paused. */
static void process_input(struct conn *c)
{
    size_t start = 0;

    while (!c->closing && !c->paused && !c->quitting && start < c->in_len) {
        char *nl = memchr(c->in + start, '\n', c->in_len - start);
        size_t end;
        if (nl == NULL)
            break;
        end = (size_t)(nl - c->in);
        c->in[end] = '\0';
        if (c->discarding) {
            c->discarding = false; /* the end of an over-long line */
        } else if (memchr(c->in + start, '\0', end - start) != NULL) {
            struct op *o = op_new(c, "");
            if (o == NULL) {
                conn_close(c);
                return;
            }
            op_reply(o, "ERR NUL byte in request");
            flush_replies(c);
        } else {
            handle_line(c, c->in + start);
        }
        start = end + 1;
        if (c->n_ops >= MAX_OPS_PER_CONN && !c->closing) {
            c->paused = true;
            uv_read_stop((uv_stream_t *)&c->tcp);
        }
    }
    if (c->closing)
        return;
    memmove(c->in, c->in + start, c->in_len - start);
    c->in_len -= start;
    if (c->in_len == MAX_LINE) { /* no newline in a full buffer: refuse the line */
        struct op *o = op_new(c, "");
        c->in_len = 0;
        c->discarding = true;
        if (o == NULL) {
            conn_close(c);
            return;
        }
        op_reply(o, "ERR line too long (limit %d bytes)", MAX_LINE);
        flush_replies(c);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(MAX_LINE - c->in_len));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    (void)buf;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->in_len += (size_t)nread;
    if (c->discarding) { /* drop the rest of an over-long line */
        char *nl = memchr(c->in, '\n', c->in_len);
        if (nl == NULL) {
            c->in_len = 0;
            return;
        }
        c->discarding = false;
        memmove(c->in, nl + 1, c->in_len - (size_t)(nl + 1 - c->in));
        c->in_len -= (size_t)(nl + 1 - c->in);
    }
    process_input(c);
}

static void conn_resume(struct conn *c)
{
    c->paused = false;
    process_input(c);
    if (!c->paused && !c->closing)
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

static void conn_closed_cb(uv_handle_t *h)
{
    struct conn *c = h->data;

    c->handle_closed = true;
    conn_free_if_idle(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    /* Answered requests are dropped now; the rest when raft answers them. */
    while (c->head != NULL && c->head->done) {
        struct op *o = c->head;
        c->head = o->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->n_ops--;
        free(o);
    }
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

static void accept_cb(uv_stream_t *listener, int status)
{
    struct server *srv = listener->data;
    struct conn *c;

    if (status != 0 || srv->stopping)
        return;
    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->srv = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    c->shutdown.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
}

/* ---- the node's life ---- */

static void watchdog_cb(uv_timer_t *t)
{
    struct server *srv = t->data;

    fprintf(stderr, "bkv-raftd: node %" PRIu64 ": close did not finish in time; exiting\n",
            srv->cfg.id);
    exit(srv->exit_code != 0 ? srv->exit_code : 1);
}

static void raft_closed(void *data)
{
    struct server *srv = data;

    srv->raft = NULL;
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->watchdog, NULL);
}

static void server_stop(struct server *srv, int code)
{
    if (srv->stopping)
        return;
    srv->stopping = true;
    srv->exit_code = code;
    uv_close((uv_handle_t *)&srv->listener, NULL);
    while (srv->conns != NULL)
        conn_close(srv->conns);
    uv_timer_start(&srv->watchdog, watchdog_cb, 5000, 0);
    uv_unref((uv_handle_t *)&srv->watchdog);
    bkv_raft_close(srv->raft, raft_closed, srv);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    (void)signum;
    server_stop(s->data, 0);
}

static void state_cb(struct bkv_raft *r, enum bkv_raft_role role, void *data)
{
    struct server *srv = data;

    (void)r;
    fprintf(stderr, "bkv-raftd: node %" PRIu64 ": %s\n", srv->cfg.id, role_name(role));
}

static void unavailable_cb(struct bkv_raft *r, const char *reason, void *data)
{
    struct server *srv = data;

    (void)r;
    fprintf(stderr, "bkv-raftd: node %" PRIu64 ": raft unavailable, exiting: %s\n", srv->cfg.id,
            reason);
    server_stop(srv, 3);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bkv-raftd --id N --raft HOST:PORT --data DIR --control HOST:PORT\n"
               "                 [--member ID@DC@HOST:PORT[@SNAPSHOT_HOST:PORT]]...\n"
               "                 [--snapshot HOST:PORT] [--dc DC] [--bootstrap]\n"
               "                 [--max-attempts N] [--snapshot-threshold N]\n"
               "                 [--snapshot-trailing N] [--snapshot-fetch-timeout MS]\n"
               "                 [--election-timeout MS] [--heartbeat MS]\n"
               "                 [--test-slow-snapshot MS]  (a failpoint: consensus/iotap.h)\n");
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v;

    if (parse_u64(s, &v) != BKV_OK || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ID@DC@ADDR[@SNAPSHOT_ADDR] */
static int parse_member(const char *s, struct bkv_raft_member *m)
{
    const char *a = strchr(s, '@'), *b = a != NULL ? strchr(a + 1, '@') : NULL;
    const char *c = b != NULL ? strchr(b + 1, '@') : NULL;
    size_t alen;
    char idbuf[24];

    if (a == NULL || b == NULL || (size_t)(a - s) >= sizeof(idbuf) ||
        (size_t)(b - a - 1) >= sizeof(m->dc))
        return -1;
    alen = c != NULL ? (size_t)(c - b - 1) : strlen(b + 1);
    if (alen == 0 || alen >= sizeof(m->address) ||
        (c != NULL && (c[1] == '\0' || strlen(c + 1) >= sizeof(m->snapshot_address))))
        return -1;
    memcpy(idbuf, s, (size_t)(a - s));
    idbuf[a - s] = '\0';
    if (parse_u64(idbuf, &m->id) != BKV_OK || m->id == 0)
        return -1;
    memcpy(m->dc, a + 1, (size_t)(b - a - 1));
    m->dc[b - a - 1] = '\0';
    memcpy(m->address, b + 1, alen);
    m->address[alen] = '\0';
    snprintf(m->snapshot_address, sizeof(m->snapshot_address), "%s", c != NULL ? c + 1 : "");
    return 0;
}

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    uint64_t port;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host) ||
        parse_uint(colon + 1, 65535, &port) != 0)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    return uv_ip4_addr(host, (int)port, sa) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    static struct server srv; /* large; zeroed */
    struct sockaddr_in control;
    const char *control_addr = NULL;
    bool bootstrap = false;
    char err[1024] = "";
    uv_loop_t loop;
    int rc;

    srv.cfg.max_attempts = BKV_CMD_DEFAULT_LIMIT;
    snprintf(srv.cfg.dc, sizeof(srv.cfg.dc), "dc1");
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t v = 0;
        int bad = 0;

        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(opt, "--bootstrap") == 0) {
            bootstrap = true;
            continue;
        } else if (val == NULL) {
            bad = 1;
        } else if (strcmp(opt, "--id") == 0) {
            bad = parse_uint(val, UINT64_MAX, &v) != 0 || v == 0;
            srv.cfg.id = v;
        } else if (strcmp(opt, "--dc") == 0) {
            bad = strlen(val) >= sizeof(srv.cfg.dc);
            if (!bad)
                snprintf(srv.cfg.dc, sizeof(srv.cfg.dc), "%s", val);
        } else if (strcmp(opt, "--raft") == 0) {
            bad = strlen(val) >= sizeof(srv.cfg.address);
            if (!bad)
                snprintf(srv.cfg.address, sizeof(srv.cfg.address), "%s", val);
        } else if (strcmp(opt, "--data") == 0) {
            bad = strlen(val) >= sizeof(srv.cfg.data_dir) - 64;
            if (!bad)
                snprintf(srv.cfg.data_dir, sizeof(srv.cfg.data_dir), "%s", val);
        } else if (strcmp(opt, "--member") == 0) {
            bad = srv.cfg.n_members >= BKV_RAFT_MAX_MEMBERS ||
                  parse_member(val, &srv.cfg.members[srv.cfg.n_members]) != 0;
            if (!bad)
                srv.cfg.n_members++;
        } else if (strcmp(opt, "--snapshot") == 0) {
            bad = strlen(val) >= sizeof(srv.cfg.snapshot_address);
            if (!bad)
                snprintf(srv.cfg.snapshot_address, sizeof(srv.cfg.snapshot_address), "%s", val);
        } else if (strcmp(opt, "--snapshot-fetch-timeout") == 0) {
            bad = parse_uint(val, 3600000, &v) != 0;
            srv.cfg.snapshot_fetch_timeout_ms = (unsigned)v;
        } else if (strcmp(opt, "--control") == 0) {
            control_addr = val;
            bad = parse_hostport(val, &control) != 0;
        } else if (strcmp(opt, "--max-attempts") == 0) {
            bad = parse_uint(val, BKV_CMD_MAX_LIMIT, &v) != 0 || v == 0;
            srv.cfg.max_attempts = (uint32_t)v;
        } else if (strcmp(opt, "--snapshot-threshold") == 0) {
            bad = parse_uint(val, UINT32_MAX, &v) != 0;
            srv.cfg.snapshot_threshold = (unsigned)v;
        } else if (strcmp(opt, "--snapshot-trailing") == 0) {
            bad = parse_uint(val, UINT32_MAX, &v) != 0;
            srv.cfg.snapshot_trailing = (unsigned)v;
        } else if (strcmp(opt, "--test-slow-snapshot") == 0) {
            bad = parse_uint(val, 600000, &v) != 0;
            srv.cfg.test_slow_snapshot_ms = (unsigned)v;
        } else if (strcmp(opt, "--election-timeout") == 0) {
            bad = parse_uint(val, 600000, &v) != 0;
            srv.cfg.election_timeout_ms = (unsigned)v;
        } else if (strcmp(opt, "--heartbeat") == 0) {
            bad = parse_uint(val, 600000, &v) != 0;
            srv.cfg.heartbeat_timeout_ms = (unsigned)v;
        } else {
            fprintf(stderr, "bkv-raftd: unknown option %s\n", opt);
            usage(stderr);
            return 1;
        }
        if (bad) {
            fprintf(stderr, "bkv-raftd: bad or missing value for %s\n", opt);
            return 1;
        }
        i++;
    }
    if (srv.cfg.id == 0 || srv.cfg.address[0] == '\0' || srv.cfg.data_dir[0] == '\0' ||
        control_addr == NULL) {
        fprintf(stderr, "bkv-raftd: --id, --raft, --data and --control are required\n");
        usage(stderr);
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    srv.loop = &loop;
    rc = bkv_raft_init(&loop, &srv.cfg, &srv.raft, err, sizeof(err));
    if (rc != BKV_OK) {
        fprintf(stderr, "bkv-raftd: node %" PRIu64 ": %s (%s)\n", srv.cfg.id, err,
                bkv_strerror(rc));
        uv_loop_close(&loop);
        return 1;
    }
    if (bootstrap) {
        rc = bkv_raft_bootstrap(srv.raft);
        if (rc == BKV_ERR_INVALID && strstr(bkv_raft_errmsg(srv.raft), "already bootstrapped")) {
            fprintf(stderr, "bkv-raftd: node %" PRIu64 ": %s; starting from disk\n", srv.cfg.id,
                    bkv_raft_errmsg(srv.raft));
            rc = BKV_OK;
        }
    }
    if (rc == BKV_OK)
        rc = bkv_raft_start(srv.raft, state_cb, unavailable_cb, &srv);
    if (rc != BKV_OK) {
        fprintf(stderr, "bkv-raftd: node %" PRIu64 ": %s (%s)\n", srv.cfg.id,
                bkv_raft_errmsg(srv.raft), bkv_strerror(rc));
        srv.exit_code = 1;
        srv.stopping = true;
        bkv_raft_close(srv.raft, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    uv_tcp_init(&loop, &srv.listener);
    srv.listener.data = &srv;
    if (uv_tcp_bind(&srv.listener, (const struct sockaddr *)&control, 0) != 0 ||
        uv_listen((uv_stream_t *)&srv.listener, 128, accept_cb) != 0) {
        fprintf(stderr, "bkv-raftd: node %" PRIu64 ": control %s: cannot listen\n", srv.cfg.id,
                control_addr);
        srv.exit_code = 1;
    }
    uv_signal_init(&loop, &srv.sigterm);
    uv_signal_init(&loop, &srv.sigint);
    uv_timer_init(&loop, &srv.watchdog);
    srv.sigterm.data = srv.sigint.data = srv.watchdog.data = &srv;
    uv_signal_start(&srv.sigterm, signal_cb, SIGTERM);
    uv_signal_start(&srv.sigint, signal_cb, SIGINT);
    if (srv.exit_code != 0) {
        srv.stopping = false;
        server_stop(&srv, 1);
    } else {
        fprintf(stderr, "bkv-raftd: node %" PRIu64 ": raft %s, control %s, snapshots %s, data %s\n",
                srv.cfg.id, srv.cfg.address, control_addr,
                srv.cfg.snapshot_address[0] != '\0' ? srv.cfg.snapshot_address : "(none)",
                srv.cfg.data_dir);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return srv.exit_code;
}
