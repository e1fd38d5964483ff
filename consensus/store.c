/*
 * The vault state on one node: SQLite 3.40 in WAL mode, one connection,
 * prepared statements cached on the handle.
 *
 * Normal path: bkv_store_apply opens a transaction (BEGIN IMMEDIATE) unless
 * one is pending, prunes remembered requests out of the window (in
 * PRUNE_STEP steps) and applies each command (or returns the remembered
 * result of a replayed request). The transaction, with the applied index of
 * its last entry, is
 * committed once it holds the group's number of entries (1 unless
 * bkv_store_set_group says more) or on bkv_store_flush. Commands that delete
 * secrets (destroy, delete, re-register) commit at once and are followed by
 * a TRUNCATE checkpoint so the old pages leave the WAL; secure_delete=ON
 * zeroes them in the database file. A snapshot is
 * VACUUM INTO a new file. A restore opens the image read-only and validates
 * it, keeps the current state unless the image is newer, else copies it next
 * to the database with the backup API (page by page, synced), checkpoints and
 * closes, removes -wal/-shm, renames the copy into place and reopens.
 * Failure modes: any SQLite error inside an apply rolls the open transaction
 * back (BKV_ERR_NOSPACE for SQLITE_FULL, otherwise BKV_ERR_IO; the SQLite
 * text is in bkv_store_errmsg()). With nothing else pending (a group of 1,
 * or the group's first entry) the store is exactly as before; otherwise the
 * group's earlier entries, which were reported applied, are lost, as they
 * are when a group's commit fails: the handle then refuses every apply, and
 * the node must restart to replay them from its log. Images are refused
 * (BKV_ERR_FORMAT) unless their header, integrity check and schema match what
 * bkv_store_snapshot writes. A restore that fails after the old connection
 * was closed and cannot reopen leaves the handle without a database: every
 * later call fails with BKV_ERR_IO, and the node must restart.
 */
#include "consensus/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "proto/err.h"
#include "proto/kdf.h"
#include "proto/util.h"

/*
 * synchronous=NORMAL in WAL mode: a commit is atomic and the database stays
 * consistent through any crash, but the last commits before a power cut may
 * be lost. That is safe here because the store is not the durable record:
 * libraft's log is (it is written with O_DSYNC before an entry counts for
 * the commit). The store keeps its applied index in the same transaction as
 * the rows, so after a crash it is at some consistent index I; on restart
 * libraft restores its latest snapshot image if that is newer than I (see
 * bkv_store_restore) and replays every later entry from its log, and the
 * store applies exactly the entries above its index. Nothing a client was
 * told can be lost, and nothing is applied twice. FULL would fsync the WAL on
 * every apply for no safety gain (measured: 362 us against 112 us per apply;
 * docs/benchmarks.md). -DBKV_STORE_SYNCHRONOUS=\"FULL\" still selects it.
 */
#ifndef BKV_STORE_SYNCHRONOUS
#define BKV_STORE_SYNCHRONOUS "NORMAL"
#endif

/*
 * Remembered requests older than the window are deleted in steps: a command
 * entry at index i deletes those below prune_cutoff(i), a multiple of
 * PRUNE_STEP, when that cutoff has moved. Which rows are left is a function
 * of the log alone (the same on every node, whenever it restarted or
 * restored), and a lookup ignores rows older than the window (ST_REQ_GET), so
 * a replay is answered exactly as with a per-entry prune.
 */
#define PRUNE_STEP 1024

#define SCHEMA_VERSION 2 /* 2: records.max_attempts, the limit replicated with the REGISTER */
#define HASH_LABEL     "BKV-STORE-HASH-v2"

static const char schema_sql[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT;"
    "CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " applied INTEGER NOT NULL CHECK (applied >= 0)) STRICT;"
    "CREATE TABLE records (account BLOB PRIMARY KEY NOT NULL CHECK (length(account) = 32),"
    " live INTEGER NOT NULL CHECK (live IN (0, 1)),"
    " attempts INTEGER NOT NULL CHECK (attempts >= 0),"
    " max_attempts INTEGER NOT NULL CHECK (max_attempts > 0),"
    " registration INTEGER NOT NULL CHECK (registration > 0),"
    " record BLOB, wrapped BLOB,"
    " CHECK ((live = 1 AND record IS NOT NULL AND wrapped IS NOT NULL)"
    " OR (live = 0 AND record IS NULL AND wrapped IS NULL))) STRICT;"
    "CREATE TABLE requests (request_id BLOB NOT NULL CHECK (length(request_id) = 16),"
    " account BLOB NOT NULL CHECK (length(account) = 32),"
    " type INTEGER NOT NULL, entry INTEGER NOT NULL, status INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL, max_attempts INTEGER NOT NULL, registration INTEGER NOT NULL,"
    " PRIMARY KEY (request_id, account, type)) STRICT, WITHOUT ROWID;"
    "CREATE INDEX requests_by_entry ON requests (entry);"
    "INSERT INTO schema_version VALUES (2);"
    "INSERT INTO meta VALUES (1, 0);";

enum {
    ST_BEGIN,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_SET_APPLIED,
    ST_REQ_GET,
    ST_REQ_PUT,
    ST_REQ_PRUNE,
    ST_REC_GET,
    ST_REC_PUT,
    ST_REC_COUNT,
    ST_REC_DESTROY,
    ST_REC_DELETE,
    ST_COUNTS,
    ST_HASH_REC,
    ST_HASH_REQ,
    ST_REQ_DROP,
    ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SET_APPLIED] = "UPDATE meta SET applied = ?1 WHERE id = 1",
    [ST_REQ_GET] = "SELECT status, attempts, max_attempts, registration, entry FROM requests"
                   " WHERE request_id = ?1 AND account = ?2 AND type = ?3",
    [ST_REQ_PUT] = "INSERT INTO requests (request_id, account, type, entry, status, attempts,"
                   " max_attempts, registration) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_REQ_PRUNE] = "DELETE FROM requests WHERE entry < ?1",
    [ST_REC_GET] = "SELECT live, attempts, registration, record, wrapped, max_attempts FROM records"
                   " WHERE account = ?1",
    [ST_REC_PUT] =
        "INSERT INTO records (account, live, attempts, max_attempts, registration, record,"
        " wrapped) VALUES (?1, 1, 0, ?5, ?2, ?3, ?4) ON CONFLICT (account) DO UPDATE SET"
        " live = 1, attempts = 0, max_attempts = excluded.max_attempts,"
        " registration = excluded.registration,"
        " record = excluded.record, wrapped = excluded.wrapped",
    [ST_REC_COUNT] = "UPDATE records SET attempts = ?2 WHERE account = ?1",
    [ST_REC_DESTROY] = "UPDATE records SET live = 0, attempts = ?2, record = NULL,"
                       " wrapped = NULL WHERE account = ?1",
    [ST_REC_DELETE] = "DELETE FROM records WHERE account = ?1",
    [ST_COUNTS] = "SELECT live, count(*) FROM records GROUP BY live",
    [ST_HASH_REC] = "SELECT account, live, attempts, max_attempts, registration, record, wrapped"
                    " FROM records ORDER BY account",
    [ST_HASH_REQ] = "SELECT request_id, account, type, entry, status, attempts, max_attempts,"
                    " registration FROM requests ORDER BY request_id, account, type",
    [ST_REQ_DROP] = "DELETE FROM requests WHERE request_id = ?1 AND account = ?2 AND type = ?3",
};

struct bkv_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *st[ST__COUNT];
    uint64_t applied;   /* last applied entry, those pending in the open transaction included */
    uint64_t committed; /* applied index of the last commit */
    uint64_t pruned;    /* requests below this entry are gone (0: not known yet) */
    unsigned group;     /* entries one transaction may hold (1: every apply commits) */
    unsigned pending;   /* entries applied in the open transaction */
    int lost;           /* a failed commit dropped applied entries: refuse to go on */
    char errmsg[BKV_STORE_ERRMSG_LEN];
};

/* One row of the records table, as apply sees it. */
struct row {
    int found, live;
    uint32_t attempts, max_attempts;
    uint64_t registration;
};

static void set_err(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (buf == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

static int map_rc(int rc)
{
    return (rc & 0xff) == SQLITE_FULL ? BKV_ERR_NOSPACE : BKV_ERR_IO;
}

/* Record the SQLite failure rc of what on s; returns the BKV code. */
static int db_fail(struct bkv_store *s, int rc, const char *what)
{
    set_err(s->errmsg, sizeof(s->errmsg), "store: %s: %s (%s)", what,
            s->db != NULL ? sqlite3_errmsg(s->db) : "no database", sqlite3_errstr(rc));
    return map_rc(rc);
}

/* Run a statement without results to completion and reset it. */
static int run(struct bkv_store *s, int id, const char *what)
{
    sqlite3_stmt *st = s->st[id];
    int rc = sqlite3_step(st);

    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = db_fail(s, rc, what);
        sqlite3_reset(st);
        return rc;
    }
    sqlite3_reset(st);
    return BKV_OK;
}

static void finalize_all(struct bkv_store *s)
{
    for (int i = 0; i < ST__COUNT; i++) {
        sqlite3_finalize(s->st[i]);
        s->st[i] = NULL;
    }
}

/* SHA-256 over the schema rows of db ("type name tbl_name sql", by name). */
static int schema_digest(sqlite3 *db, uint8_t out[static 32])
{
    static const char q[] = "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_schema"
                            " ORDER BY type, name";
    sqlite3_stmt *st = NULL;
    uint8_t h[32] = {0};
    int rc;

    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
        return BKV_ERR_FORMAT;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct bkv_buf parts[5] = {{h, 32}};

        for (int c = 0; c < 4; c++) {
            parts[c + 1].p = sqlite3_column_text(st, c);
            parts[c + 1].n = (size_t)sqlite3_column_bytes(st, c) + 1; /* with the NUL */
        }
        if (bkv_sha256(parts, 5, h) != 0) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return BKV_ERR_FORMAT;
    memcpy(out, h, 32);
    return BKV_OK;
}

/* The digest of the schema this build writes (an in-memory database). */
static int expected_schema(uint8_t out[static 32])
{
    sqlite3 *db = NULL;
    int rv = BKV_ERR_NOMEM;

    if (sqlite3_open_v2(":memory:", &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_exec(db, schema_sql, NULL, NULL, NULL) == SQLITE_OK)
        rv = schema_digest(db, out);
    sqlite3_close(db);
    return rv;
}

/* Harden a connection: no writable schema tricks, no functions from the schema. */
static void harden(sqlite3 *db)
{
    sqlite3_extended_result_codes(db, 1);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
}

/* One integer from a single-row query; BKV_ERR_FORMAT unless exactly one row. */
static int query_u64(sqlite3 *db, const char *sql, uint64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rv = BKV_ERR_FORMAT;

    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_type(st, 0) != SQLITE_INTEGER ||
        sqlite3_column_int64(st, 0) < 0)
        goto out;
    *out = (uint64_t)sqlite3_column_int64(st, 0);
    if (sqlite3_step(st) == SQLITE_DONE)
        rv = BKV_OK;
out:
    sqlite3_finalize(st);
    return rv;
}

/* Check that db holds exactly our schema, version and a meta row; read applied. */
static int check_schema(sqlite3 *db, const char *path, uint64_t *applied, char *err, size_t cap)
{
    uint8_t want[32], got[32];
    uint64_t version = 0;
    int rv;

    rv = expected_schema(want);
    if (rv != BKV_OK) {
        set_err(err, cap, "store: cannot build the reference schema");
        return rv;
    }
    if (schema_digest(db, got) != BKV_OK || memcmp(want, got, 32) != 0) {
        set_err(err, cap, "store: %s: not a BKV store of schema %d", path, SCHEMA_VERSION);
        return BKV_ERR_FORMAT;
    }
    if (query_u64(db, "SELECT version FROM schema_version", &version) != BKV_OK ||
        version != SCHEMA_VERSION) {
        set_err(err, cap, "store: %s: schema version %llu, want %d", path,
                (unsigned long long)version, SCHEMA_VERSION);
        return BKV_ERR_FORMAT;
    }
    if (query_u64(db, "SELECT applied FROM meta WHERE id = 1", applied) != BKV_OK) {
        set_err(err, cap, "store: %s: no applied index", path);
        return BKV_ERR_FORMAT;
    }
    return BKV_OK;
}

/* Open s->path: pragmas, schema (created if the file is empty), statements. */
static int db_open(struct bkv_store *s, char *err, size_t cap)
{
    static const char pragmas[] = "PRAGMA secure_delete = ON;"
                                  "PRAGMA cell_size_check = ON;"
                                  "PRAGMA synchronous = " BKV_STORE_SYNCHRONOUS ";";
    sqlite3_stmt *st = NULL;
    int rc, rv = BKV_ERR_IO, empty;

    /* NOMUTEX: one thread owns the handle (store.h), so SQLite's own locking is not needed. */
    rc = sqlite3_open_v2(s->path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, cap, "store: open %s: %s", s->path,
                s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    harden(s->db);
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
        rc = SQLITE_CANTOPEN;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW || sqlite3_exec(s->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        rc = sqlite3_errcode(s->db);
        rv = (rc & 0xff) == SQLITE_NOTADB ? BKV_ERR_FORMAT : map_rc(rc);
        set_err(err, cap, "store: open %s: WAL mode: %s", s->path, sqlite3_errmsg(s->db));
        goto fail;
    }
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        goto fail_db;
    empty = 0;
    rc = sqlite3_prepare_v2(s->db, "SELECT count(*) = 0 FROM sqlite_schema", -1, &st, NULL);
    if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        empty = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (empty && sqlite3_exec(s->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
        goto fail_db;
    rv = check_schema(s->db, s->path, &s->applied, err, cap);
    s->committed = s->applied;
    s->pending = 0;
    s->pruned = 0;
    if (rv != BKV_OK || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        if (rv == BKV_OK)
            goto fail_db;
        goto fail;
    }
    for (int i = 0; i < ST__COUNT; i++) {
        rc = sqlite3_prepare_v3(s->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
        if (rc != SQLITE_OK)
            goto fail_db;
    }
    return BKV_OK;

fail_db:
    rc = sqlite3_errcode(s->db);
    rv = (rc & 0xff) == SQLITE_NOTADB ? BKV_ERR_FORMAT : map_rc(rc);
    set_err(err, cap, "store: open %s: %s", s->path, sqlite3_errmsg(s->db));
fail:
    finalize_all(s);
    sqlite3_close(s->db);
    s->db = NULL;
    return rv;
}

int bkv_store_open(const char *path, struct bkv_store **out, char *err, size_t err_cap)
{
    struct bkv_store *s;
    int rv;

    if (path == NULL || out == NULL)
        return BKV_ERR_INVALID;
    s = calloc(1, sizeof(*s));
    if (s == NULL || (s->path = strdup(path)) == NULL) {
        free(s);
        set_err(err, err_cap, "store: out of memory");
        return BKV_ERR_NOMEM;
    }
    s->group = 1;
    rv = db_open(s, err, err_cap);
    if (rv != BKV_OK) {
        free(s->path);
        free(s);
        return rv;
    }
    *out = s;
    return BKV_OK;
}

void bkv_store_close(struct bkv_store *s)
{
    if (s == NULL)
        return;
    bkv_store_flush(s); /* a failure leaves the last commit: the log replays the rest */
    finalize_all(s);
    sqlite3_close(s->db);
    free(s->path);
    free(s);
}

const char *bkv_store_errmsg(const struct bkv_store *s)
{
    return s != NULL ? s->errmsg : "store: no store";
}

uint64_t bkv_store_applied_index(const struct bkv_store *s)
{
    return s != NULL ? s->applied : 0;
}

static int no_db(struct bkv_store *s)
{
    set_err(s->errmsg, sizeof(s->errmsg), "store: %s: database closed after a failed restore",
            s->path);
    return BKV_ERR_IO;
}

static int bind_blob(sqlite3_stmt *st, int i, const void *p, size_t n)
{
    return sqlite3_bind_blob64(st, i, p, n, SQLITE_STATIC);
}

static int row_get(struct bkv_store *s, const uint8_t *account, struct row *r)
{
    sqlite3_stmt *st = s->st[ST_REC_GET];
    int rc;

    memset(r, 0, sizeof(*r));
    bind_blob(st, 1, account, BKV_ACCOUNT_KEY_LEN);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->found = 1;
        r->live = sqlite3_column_int(st, 0);
        r->attempts = (uint32_t)sqlite3_column_int64(st, 1);
        r->registration = (uint64_t)sqlite3_column_int64(st, 2);
        r->max_attempts = (uint32_t)sqlite3_column_int64(st, 5);
        rc = SQLITE_DONE;
    }
    if (rc != SQLITE_DONE)
        rc = db_fail(s, rc, "read record");
    else
        rc = BKV_OK;
    sqlite3_reset(st);
    return rc;
}

/* Update a record row: id is ST_REC_COUNT or ST_REC_DESTROY. */
static int row_set(struct bkv_store *s, int id, const uint8_t *account, uint32_t attempts)
{
    bind_blob(s->st[id], 1, account, BKV_ACCOUNT_KEY_LEN);
    sqlite3_bind_int64(s->st[id], 2, attempts);
    return run(s, id, "update record");
}

/* Apply one new command at index; *wiped = 1 if secrets left a row. */
static int apply_one(struct bkv_store *s, uint64_t index, const struct bkv_cmd *c,
                     struct bkv_cmd_result *res, int *wiped)
{
    struct row r;
    sqlite3_stmt *st;
    int rv = row_get(s, c->account, &r);

    if (rv != BKV_OK)
        return rv;
    memset(res, 0, sizeof(*res));
    switch (c->type) {
    case BKV_CMD_REGISTER:
        if (c->max_attempts == 0 || c->max_attempts > BKV_CMD_MAX_LIMIT) {
            set_err(s->errmsg, sizeof(s->errmsg), "store: register: max_attempts %lu",
                    (unsigned long)c->max_attempts);
            return BKV_ERR_INVALID;
        }
        if (c->conditional && (r.found ? r.registration : 0) != c->registration) {
            /* A compare-and-set that lost (cmd.h): nothing changes. */
            res->status = BKV_CMD_STALE;
            res->attempts = r.attempts;
            res->registration = r.found ? r.registration : 0;
            res->max_attempts = r.max_attempts;
            break;
        }
        st = s->st[ST_REC_PUT];
        bind_blob(st, 1, c->account, BKV_ACCOUNT_KEY_LEN);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)index);
        bind_blob(st, 3, c->record, c->record_len);
        bind_blob(st, 4, c->wrapped, c->wrapped_len);
        sqlite3_bind_int64(st, 5, c->max_attempts);
        rv = run(s, ST_REC_PUT, "register");
        *wiped |= r.found && r.live;
        res->status = BKV_CMD_REGISTERED;
        res->max_attempts = c->max_attempts;
        res->registration = index;
        break;
    case BKV_CMD_ATTEMPT:
        /* The row's own limit, replicated with its REGISTER (cmd.h). */
        res->max_attempts = r.max_attempts;
        if (!r.found) {
            res->status = BKV_CMD_NOT_FOUND;
            break;
        }
        res->attempts = r.attempts;
        if (!r.live) {
            res->status = BKV_CMD_DESTROYED;
            break;
        }
        res->attempts = r.attempts + 1;
        if (r.attempts >= r.max_attempts) {
            /* Past the limit: the secrets go, a tombstone stays. */
            rv = row_set(s, ST_REC_DESTROY, c->account, res->attempts);
            *wiped = 1;
            res->status = BKV_CMD_DESTROYED;
            break;
        }
        rv = row_set(s, ST_REC_COUNT, c->account, res->attempts);
        res->status = BKV_CMD_COUNTED;
        res->registration = r.registration;
        break;
    case BKV_CMD_SUCCESS:
        if (!r.found) {
            res->status = BKV_CMD_NOT_FOUND;
        } else if (!r.live) {
            res->status = BKV_CMD_DESTROYED;
            res->attempts = r.attempts;
        } else if (r.registration != c->registration) {
            res->status = BKV_CMD_STALE;
            res->attempts = r.attempts;
            res->registration = r.registration;
        } else {
            rv = row_set(s, ST_REC_COUNT, c->account, 0);
            res->status = BKV_CMD_RESET;
            res->registration = r.registration;
        }
        break;
    case BKV_CMD_DELETE:
        res->status = r.found ? BKV_CMD_DELETED : BKV_CMD_NOT_FOUND;
        if (r.found) {
            bind_blob(s->st[ST_REC_DELETE], 1, c->account, BKV_ACCOUNT_KEY_LEN);
            rv = run(s, ST_REC_DELETE, "delete");
            *wiped |= r.live;
        }
        break;
    default:
        set_err(s->errmsg, sizeof(s->errmsg), "store: command type %d", (int)c->type);
        return BKV_ERR_INVALID;
    }
    return rv;
}

/* The first entry a request at index is remembered from (see PRUNE_STEP). */
static uint64_t window_start(uint64_t index)
{
    return index > BKV_STORE_REQUEST_WINDOW ? index - BKV_STORE_REQUEST_WINDOW : 0;
}

/*
 * The remembered result of c's request id at index: *found = 1 and res
 * filled. A row older than the window (left until the next prune step) is
 * not remembered: it is dropped, so the request is applied and remembered
 * anew.
 */
static int request_get(struct bkv_store *s, uint64_t index, const struct bkv_cmd *c,
                       struct bkv_cmd_result *res, int *found)
{
    sqlite3_stmt *st = s->st[ST_REQ_GET];
    int rc, stale = 0;

    *found = 0;
    bind_blob(st, 1, c->request_id, BKV_REQUEST_ID_LEN);
    bind_blob(st, 2, c->account, BKV_ACCOUNT_KEY_LEN);
    sqlite3_bind_int(st, 3, (int)c->type);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 4) < window_start(index)) {
        stale = 1;
        rc = SQLITE_DONE;
    } else if (rc == SQLITE_ROW) {
        *found = 1;
        memset(res, 0, sizeof(*res));
        res->status = (enum bkv_cmd_status)sqlite3_column_int(st, 0);
        res->attempts = (uint32_t)sqlite3_column_int64(st, 1);
        res->max_attempts = (uint32_t)sqlite3_column_int64(st, 2);
        res->registration = (uint64_t)sqlite3_column_int64(st, 3);
        res->replayed = 1;
        rc = SQLITE_DONE;
    }
    rc = rc == SQLITE_DONE ? BKV_OK : db_fail(s, rc, "read request");
    sqlite3_reset(st);
    if (rc == BKV_OK && stale) {
        st = s->st[ST_REQ_DROP];
        bind_blob(st, 1, c->request_id, BKV_REQUEST_ID_LEN);
        bind_blob(st, 2, c->account, BKV_ACCOUNT_KEY_LEN);
        sqlite3_bind_int(st, 3, (int)c->type);
        rc = run(s, ST_REQ_DROP, "drop an old request");
    }
    return rc;
}

static int request_put(struct bkv_store *s, uint64_t index, const struct bkv_cmd *c,
                       const struct bkv_cmd_result *res)
{
    sqlite3_stmt *st = s->st[ST_REQ_PUT];

    bind_blob(st, 1, c->request_id, BKV_REQUEST_ID_LEN);
    bind_blob(st, 2, c->account, BKV_ACCOUNT_KEY_LEN);
    sqlite3_bind_int(st, 3, (int)c->type);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)index);
    sqlite3_bind_int(st, 5, (int)res->status);
    sqlite3_bind_int64(st, 6, res->attempts);
    sqlite3_bind_int64(st, 7, res->max_attempts);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)res->registration);
    return run(s, ST_REQ_PUT, "remember request");
}

/*
 * The open transaction is gone (a failed commit, or SQLite rolled it back on
 * an I/O error). Its entries but the last `unreported` ones were reported
 * applied: if there are any, the handle refuses every later apply (the node
 * must restart and replay them from the log).
 */
static void lose_pending(struct bkv_store *s, unsigned unreported)
{
    if (s->pending > unreported)
        s->lost = 1;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_step(s->st[ST_ROLLBACK]);
    sqlite3_reset(s->st[ST_ROLLBACK]);
    s->pending = 0;
    s->applied = s->committed;
    s->pruned = 0;
}

static int lost_err(struct bkv_store *s)
{
    set_err(s->errmsg, sizeof(s->errmsg),
            "store: %s: a failed write dropped the entries applied after index %llu; restart"
            " to replay them from the log",
            s->path, (unsigned long long)s->committed);
    return BKV_ERR_IO;
}

/*
 * Commit the open transaction with the applied index of its last entry
 * (unreported: 1 if that entry's apply has not returned yet).
 */
static int commit(struct bkv_store *s, unsigned unreported)
{
    char why[BKV_STORE_ERRMSG_LEN];
    int rv;

    sqlite3_bind_int64(s->st[ST_SET_APPLIED], 1, (sqlite3_int64)s->applied);
    rv = run(s, ST_SET_APPLIED, "store applied index");
    if (rv == BKV_OK)
        rv = run(s, ST_COMMIT, "commit");
    if (rv != BKV_OK) {
        int lost = s->pending > unreported;

        memcpy(why, s->errmsg, sizeof(why));
        lose_pending(s, unreported);
        if (lost)
            set_err(s->errmsg, sizeof(s->errmsg), "%s; entries after index %llu dropped", why,
                    (unsigned long long)s->committed);
        return rv;
    }
    s->pending = 0;
    s->committed = s->applied;
    return BKV_OK;
}

int bkv_store_flush(struct bkv_store *s)
{
    if (s == NULL)
        return BKV_ERR_INVALID;
    if (s->lost)
        return lost_err(s);
    if (s->pending == 0)
        return BKV_OK;
    if (s->db == NULL)
        return no_db(s);
    return commit(s, 0);
}

void bkv_store_set_group(struct bkv_store *s, unsigned max)
{
    if (s != NULL)
        s->group = max > 0 ? max : 1;
}

unsigned bkv_store_pending(const struct bkv_store *s)
{
    return s != NULL ? s->pending : 0;
}

int bkv_store_failed(const struct bkv_store *s)
{
    return s != NULL && s->lost;
}

int bkv_store_apply(struct bkv_store *s, uint64_t index, const struct bkv_cmd *cmds, size_t n,
                    struct bkv_cmd_result *results, int *ahead)
{
    uint64_t cutoff = 0;
    int rv = BKV_OK, wiped = 0, found;

    if (ahead != NULL)
        *ahead = 0;
    if (s == NULL || (n > 0 && (cmds == NULL || results == NULL)) || index > INT64_MAX)
        return BKV_ERR_INVALID;
    if (n > 0)
        memset(results, 0, n * sizeof(*results));
    if (index <= s->applied) {
        /* Already applied (a replay after a restart) or the store is ahead of the log. */
        if (ahead != NULL)
            *ahead = 1;
        return BKV_OK;
    }
    if (s->lost)
        return lost_err(s);
    if (s->db == NULL)
        return no_db(s);
    if (s->pending == 0) {
        rv = run(s, ST_BEGIN, "begin");
        if (rv != BKV_OK) {
            lose_pending(s, 0);
            return rv;
        }
    }
    /* Only command entries prune, so the rows left depend on the log alone. */
    if (n > 0 && window_start(index) >= PRUNE_STEP) {
        cutoff = window_start(index) / PRUNE_STEP * PRUNE_STEP;
        if (cutoff > s->pruned) {
            sqlite3_bind_int64(s->st[ST_REQ_PRUNE], 1, (sqlite3_int64)cutoff);
            rv = run(s, ST_REQ_PRUNE, "prune requests");
        }
    }
    for (size_t i = 0; i < n && rv == BKV_OK; i++) {
        rv = request_get(s, index, &cmds[i], &results[i], &found);
        if (rv != BKV_OK || found)
            continue;
        rv = apply_one(s, index, &cmds[i], &results[i], &wiped);
        if (rv == BKV_OK)
            rv = request_put(s, index, &cmds[i], &results[i]);
    }
    if (rv != BKV_OK) {
        /*
         * No savepoint per entry (its statement journal copied every page an
         * entry touched): a failed entry rolls the group back. Its earlier
         * entries were reported applied, so they are lost (lose_pending).
         */
        lose_pending(s, 0);
        if (n > 0)
            memset(results, 0, n * sizeof(*results));
        return rv;
    }
    s->applied = index;
    s->pending++;
    if (cutoff > s->pruned)
        s->pruned = cutoff;
    /* An entry that deleted secrets commits at once, and its pages leave the WAL. */
    if (wiped || s->pending >= s->group) {
        rv = commit(s, 1);
        if (rv != BKV_OK) {
            if (n > 0)
                memset(results, 0, n * sizeof(*results));
            return rv;
        }
    }
    /*
     * Push the pages that held deleted secrets out of the WAL. A failure
     * here changes no state (the next destroy retries), so it is not fatal.
     */
    if (wiped)
        sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    return BKV_OK;
}

int bkv_store_skip(struct bkv_store *s, uint64_t index)
{
    return bkv_store_apply(s, index, NULL, 0, NULL, NULL);
}

int bkv_store_get(struct bkv_store *s, const uint8_t account[static BKV_ACCOUNT_KEY_LEN],
                  struct bkv_store_record *out, int *found)
{
    sqlite3_stmt *st;
    int rc, rv = BKV_OK;

    if (s == NULL || out == NULL || found == NULL)
        return BKV_ERR_INVALID;
    *found = 0;
    if (s->db == NULL)
        return no_db(s);
    st = s->st[ST_REC_GET];
    bind_blob(st, 1, account, BKV_ACCOUNT_KEY_LEN);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        struct bkv_store_record r = {0};
        size_t rl = (size_t)sqlite3_column_bytes(st, 3), wl = (size_t)sqlite3_column_bytes(st, 4);

        r.live = sqlite3_column_int(st, 0);
        r.attempts = (uint32_t)sqlite3_column_int64(st, 1);
        r.registration = (uint64_t)sqlite3_column_int64(st, 2);
        r.max_attempts = (uint32_t)sqlite3_column_int64(st, 5);
        if (rl > 0 && (r.record = malloc(rl)) != NULL)
            memcpy(r.record, sqlite3_column_blob(st, 3), r.record_len = rl);
        if (wl > 0 && (r.wrapped = malloc(wl)) != NULL)
            memcpy(r.wrapped, sqlite3_column_blob(st, 4), r.wrapped_len = wl);
        if ((rl > 0 && r.record == NULL) || (wl > 0 && r.wrapped == NULL)) {
            bkv_store_record_free(&r);
            rv = BKV_ERR_NOMEM;
        } else {
            *out = r;
            *found = 1;
        }
    } else if (rc != SQLITE_DONE) {
        rv = db_fail(s, rc, "read record");
    }
    sqlite3_reset(st);
    return rv;
}

void bkv_store_record_free(struct bkv_store_record *r)
{
    if (r == NULL)
        return;
    free(r->record);
    free(r->wrapped);
    r->record = r->wrapped = NULL;
    r->record_len = r->wrapped_len = 0;
}

int bkv_store_counts(struct bkv_store *s, uint64_t *live, uint64_t *tombstones)
{
    sqlite3_stmt *st;
    int rc;

    if (s == NULL || live == NULL || tombstones == NULL)
        return BKV_ERR_INVALID;
    *live = *tombstones = 0;
    if (s->db == NULL)
        return no_db(s);
    st = s->st[ST_COUNTS];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t c = (uint64_t)sqlite3_column_int64(st, 1);

        if (sqlite3_column_int(st, 0))
            *live = c;
        else
            *tombstones = c;
    }
    rc = rc == SQLITE_DONE ? BKV_OK : db_fail(s, rc, "count records");
    sqlite3_reset(st);
    return rc;
}

/*
 * Chain h = SHA-256(h || tag || fields || blobs) over the rows of the hash
 * statement id, in key order: each column is 8 bytes big-endian, the value
 * of an integer or the length of a blob (all ones for NULL); the blob bytes
 * follow in column order.
 */
static int hash_rows(struct bkv_store *s, int id, uint8_t tag, uint8_t h[static 32])
{
    sqlite3_stmt *st = s->st[id];
    int cols = sqlite3_column_count(st), rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint8_t fixed[8 * 8 + 1], *p = fixed + 1;
        struct bkv_buf parts[2 + 8];
        size_t np = 2;

        fixed[0] = tag;
        for (int c = 0; c < cols; c++) {
            int t = sqlite3_column_type(st, c);

            if (t == SQLITE_INTEGER) {
                bkv_put_u64(p, (uint64_t)sqlite3_column_int64(st, c));
            } else {
                size_t len = (size_t)sqlite3_column_bytes(st, c);

                bkv_put_u64(p, t == SQLITE_NULL ? UINT64_MAX : len);
                if (t != SQLITE_NULL && len > 0) {
                    parts[np].p = sqlite3_column_blob(st, c);
                    parts[np++].n = len;
                }
            }
            p += 8;
        }
        parts[0] = (struct bkv_buf){h, 32};
        parts[1] = (struct bkv_buf){fixed, (size_t)(p - fixed)};
        if (bkv_sha256(parts, np, h) != 0) {
            sqlite3_reset(st);
            set_err(s->errmsg, sizeof(s->errmsg), "store: hash: SHA-256 failed");
            return BKV_ERR_CRYPTO;
        }
    }
    rc = rc == SQLITE_DONE ? BKV_OK : db_fail(s, rc, "hash");
    sqlite3_reset(st);
    return rc;
}

int bkv_store_hash(struct bkv_store *s, uint8_t out[static 32])
{
    struct bkv_buf label = {(const uint8_t *)HASH_LABEL, sizeof(HASH_LABEL) - 1};
    uint8_t h[32];
    int rv;

    if (s == NULL)
        return BKV_ERR_INVALID;
    if (s->db == NULL)
        return no_db(s);
    if (bkv_sha256(&label, 1, h) != 0)
        return BKV_ERR_CRYPTO;
    rv = bkv_store_flush(s);
    if (rv == BKV_OK)
        rv = run(s, ST_BEGIN_READ, "begin read");
    if (rv != BKV_OK)
        return rv;
    rv = hash_rows(s, ST_HASH_REC, 'R', h);
    if (rv == BKV_OK)
        rv = hash_rows(s, ST_HASH_REQ, 'Q', h);
    if (run(s, ST_COMMIT, "end read") != BKV_OK && rv == BKV_OK)
        rv = BKV_ERR_IO;
    if (rv == BKV_OK)
        memcpy(out, h, 32);
    return rv;
}

int bkv_store_snapshot(struct bkv_store *s, const char *path)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (s == NULL || path == NULL)
        return BKV_ERR_INVALID;
    if (s->db == NULL)
        return no_db(s);
    rc = bkv_store_flush(s); /* the image holds every applied entry */
    if (rc != BKV_OK)
        return rc;
    /* VACUUM INTO: a consistent, compact copy written page by page. */
    rc = sqlite3_prepare_v2(s->db, "VACUUM INTO ?1", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) {
        rc = db_fail(s, rc, "snapshot");
        sqlite3_finalize(st);
        unlink(path);
        return rc;
    }
    sqlite3_finalize(st);
    return BKV_OK;
}

/*
 * Open the image at path read-only without trusting it: the SQLite header of
 * a rollback-journal database (what VACUUM INTO writes), a clean
 * integrity_check, exactly our schema. *applied gets its applied index.
 */
static int image_open(struct bkv_store *s, const char *path, sqlite3 **out, uint64_t *applied)
{
    static const char magic[16] = "SQLite format 3";
    uint8_t hdr[100];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ssize_t got;
    int fd, rv = BKV_ERR_FORMAT;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_err(s->errmsg, sizeof(s->errmsg), "store: image %s: %s", path, strerror(errno));
        return BKV_ERR_IO;
    }
    got = read(fd, hdr, sizeof(hdr));
    close(fd);
    if (got != (ssize_t)sizeof(hdr) || memcmp(hdr, magic, 16) != 0 || hdr[18] != 1 ||
        hdr[19] != 1) {
        set_err(s->errmsg, sizeof(s->errmsg), "store: image %s: not a snapshot image", path);
        return BKV_ERR_FORMAT;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        set_err(s->errmsg, sizeof(s->errmsg), "store: image %s: %s", path,
                db != NULL ? sqlite3_errmsg(db) : "cannot open");
        rv = BKV_ERR_IO;
        goto out;
    }
    harden(db);
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check(1)", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW ||
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        set_err(s->errmsg, sizeof(s->errmsg), "store: image %s: integrity check: %s", path,
                st != NULL && sqlite3_column_text(st, 0) != NULL
                    ? (const char *)sqlite3_column_text(st, 0)
                    : sqlite3_errmsg(db));
        goto out;
    }
    rv = check_schema(db, path, applied, s->errmsg, sizeof(s->errmsg));
out:
    sqlite3_finalize(st);
    if (rv == BKV_OK)
        *out = db;
    else
        sqlite3_close(db);
    return rv;
}

/* Copy the open image into a new database file at to, page by page, synced. */
static int image_copy(struct bkv_store *s, sqlite3 *img, const char *to)
{
    sqlite3 *dst = NULL;
    sqlite3_backup *b;
    int rc;

    unlink(to);
    rc = sqlite3_open_v2(to, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(dst, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        b = sqlite3_backup_init(dst, "main", img, "main");
        if (b == NULL) {
            rc = sqlite3_errcode(dst);
            if (rc == SQLITE_OK)
                rc = SQLITE_ERROR;
        } else {
            /* All pages in one step: SQLITE_DONE, anything else is a failure. */
            int step = sqlite3_backup_step(b, -1);
            int fin = sqlite3_backup_finish(b); /* the step's error, or its own */

            rc = step == SQLITE_DONE ? fin : (step == SQLITE_OK ? SQLITE_ERROR : step);
        }
    }
    if (rc != SQLITE_OK)
        set_err(s->errmsg, sizeof(s->errmsg), "store: copy image to %s: %s", to,
                dst != NULL ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
    if (sqlite3_close(dst) != SQLITE_OK && rc == SQLITE_OK)
        rc = SQLITE_IOERR;
    if (rc != SQLITE_OK)
        unlink(to);
    return rc == SQLITE_OK ? BKV_OK : map_rc(rc);
}

/* fsync the directory holding path, so that a rename in it is durable. */
static int sync_dir(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int fd, rv;

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    rv = fsync(fd);
    close(fd);
    return rv;
}

static void unlink_side(const char *db, const char *suffix)
{
    char p[4200];

    snprintf(p, sizeof(p), "%s%s", db, suffix);
    unlink(p);
}

int bkv_store_restore(struct bkv_store *s, const char *path, int *kept)
{
    sqlite3 *img = NULL;
    char tmp[4200];
    uint64_t applied = 0;
    int rv, rc;

    if (s == NULL || path == NULL || kept == NULL)
        return BKV_ERR_INVALID;
    *kept = 0;
    if (s->db == NULL)
        return no_db(s);
    rv = bkv_store_flush(s);
    if (rv != BKV_OK)
        return rv;
    rv = image_open(s, path, &img, &applied);
    if (rv != BKV_OK)
        return rv;
    if (applied <= s->applied) {
        sqlite3_close(img);
        *kept = 1;
        return BKV_OK;
    }
    /* Copy the validated image next to the database: rename is atomic there. */
    snprintf(tmp, sizeof(tmp), "%s.restore", s->path);
    rv = image_copy(s, img, tmp);
    sqlite3_close(img);
    if (rv != BKV_OK)
        return rv;
    /* Empty the WAL into the database first: the WAL must not outlive it. */
    rc = sqlite3_exec(s->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        unlink(tmp);
        return db_fail(s, rc, "checkpoint before restore");
    }
    finalize_all(s);
    sqlite3_close(s->db);
    s->db = NULL;
    unlink_side(s->path, "-wal");
    unlink_side(s->path, "-shm");
    if (rename(tmp, s->path) != 0 || sync_dir(s->path) != 0) {
        set_err(s->errmsg, sizeof(s->errmsg), "store: install image as %s: %s", s->path,
                strerror(errno));
        unlink(tmp);
        db_open(s, NULL, 0); /* back to the old state, if it still opens */
        return BKV_ERR_IO;
    }
    rv = db_open(s, s->errmsg, sizeof(s->errmsg));
    if (rv == BKV_OK && s->applied != applied)
        rv = BKV_ERR_IO;
    return rv;
}
