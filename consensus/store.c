/*
 * The vault state on one node: SQLite 3.40 in WAL mode, one connection,
 * prepared statements cached on the handle (struct bkv_store is in
 * store_internal.h; the state hash and snapshot images are in store_image.c).
 *
 * Normal path: bkv_store_open creates the schema in an empty file, or checks
 * that the file holds exactly it. bkv_store_apply opens a transaction (BEGIN
 * IMMEDIATE) unless one is pending, prunes remembered requests out of the
 * window (in PRUNE_STEP steps) and applies each command (or returns the
 * remembered result of a replayed request). The transaction, with the applied
 * index of its last entry, is committed once it holds the group's number of
 * entries (1 unless bkv_store_set_group says more) or on bkv_store_flush.
 * Commands that delete secrets (destroy, delete, re-register) commit at once
 * and are followed by a TRUNCATE checkpoint so the old pages leave the WAL;
 * secure_delete=ON zeroes them in the database file.
 * Failure modes: a database of another schema is refused at open
 * (BKV_ERR_FORMAT). Any SQLite error inside an apply rolls the open
 * transaction back (BKV_ERR_NOSPACE for SQLITE_FULL, otherwise BKV_ERR_IO; the
 * SQLite text is in bkv_store_errmsg()). With nothing else pending (a group
 * of 1, or the group's first entry) the store is exactly as before; otherwise
 * the group's earlier entries, which were reported applied, are lost, as they
 * are when a group's commit fails: the handle then refuses every apply, and
 * the node must restart to replay them from its log. A handle a failed
 * restore left without a database fails every call with BKV_ERR_IO.
 */
#include "consensus/store.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "consensus/store_internal.h"
#include "proto/err.h"
#include "proto/kdf.h"

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

/* One row of the records table, as apply sees it. */
struct row {
    int found, live;
    uint32_t attempts, max_attempts;
    uint64_t registration;
};

void store_set_err(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;

    if (buf == NULL || cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

int store_map_rc(int rc)
{
    return (rc & 0xff) == SQLITE_FULL ? BKV_ERR_NOSPACE : BKV_ERR_IO;
}

/* Record the SQLite failure rc of what on s; returns the BKV code. */
int store_db_fail(struct bkv_store *s, int rc, const char *what)
{
    store_set_err(s->errmsg, sizeof(s->errmsg), "store: %s: %s (%s)", what,
                  s->db != NULL ? sqlite3_errmsg(s->db) : "no database", sqlite3_errstr(rc));
    return store_map_rc(rc);
}

/* Run a statement without results to completion and reset it. */
int store_run(struct bkv_store *s, int id, const char *what)
{
    sqlite3_stmt *st = s->st[id];
    int rc = sqlite3_step(st);

    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        rc = store_db_fail(s, rc, what);
        sqlite3_reset(st);
        return rc;
    }
    sqlite3_reset(st);
    return BKV_OK;
}

void store_finalize_all(struct bkv_store *s)
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
void store_harden(sqlite3 *db)
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
int store_check_schema(sqlite3 *db, const char *path, uint64_t *applied, char *err, size_t cap)
{
    uint8_t want[32], got[32];
    uint64_t version = 0;
    int rv;

    rv = expected_schema(want);
    if (rv != BKV_OK) {
        store_set_err(err, cap, "store: cannot build the reference schema");
        return rv;
    }
    if (schema_digest(db, got) != BKV_OK || memcmp(want, got, 32) != 0) {
        store_set_err(err, cap, "store: %s: not a BKV store of schema %d", path, SCHEMA_VERSION);
        return BKV_ERR_FORMAT;
    }
    if (query_u64(db, "SELECT version FROM schema_version", &version) != BKV_OK ||
        version != SCHEMA_VERSION) {
        store_set_err(err, cap, "store: %s: schema version %llu, want %d", path,
                      (unsigned long long)version, SCHEMA_VERSION);
        return BKV_ERR_FORMAT;
    }
    if (query_u64(db, "SELECT applied FROM meta WHERE id = 1", applied) != BKV_OK) {
        store_set_err(err, cap, "store: %s: no applied index", path);
        return BKV_ERR_FORMAT;
    }
    return BKV_OK;
}

/* Open s->path: pragmas, schema (created if the file is empty), statements. */
int store_db_open(struct bkv_store *s, char *err, size_t cap)
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
        store_set_err(err, cap, "store: open %s: %s", s->path,
                      s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    store_harden(s->db);
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
        rc = SQLITE_CANTOPEN;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW || sqlite3_exec(s->db, pragmas, NULL, NULL, NULL) != SQLITE_OK) {
        rc = sqlite3_errcode(s->db);
        rv = (rc & 0xff) == SQLITE_NOTADB ? BKV_ERR_FORMAT : store_map_rc(rc);
        store_set_err(err, cap, "store: open %s: WAL mode: %s", s->path, sqlite3_errmsg(s->db));
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
    rv = store_check_schema(s->db, s->path, &s->applied, err, cap);
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
    rv = (rc & 0xff) == SQLITE_NOTADB ? BKV_ERR_FORMAT : store_map_rc(rc);
    store_set_err(err, cap, "store: open %s: %s", s->path, sqlite3_errmsg(s->db));
fail:
    store_finalize_all(s);
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
        store_set_err(err, err_cap, "store: out of memory");
        return BKV_ERR_NOMEM;
    }
    s->group = 1;
    rv = store_db_open(s, err, err_cap);
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
    store_finalize_all(s);
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

int store_no_db(struct bkv_store *s)
{
    store_set_err(s->errmsg, sizeof(s->errmsg), "store: %s: database closed after a failed restore",
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
        rc = store_db_fail(s, rc, "read record");
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
    return store_run(s, id, "update record");
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
            store_set_err(s->errmsg, sizeof(s->errmsg), "store: register: max_attempts %lu",
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
        rv = store_run(s, ST_REC_PUT, "register");
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
            rv = store_run(s, ST_REC_DELETE, "delete");
            *wiped |= r.live;
        }
        break;
    default:
        store_set_err(s->errmsg, sizeof(s->errmsg), "store: command type %d", (int)c->type);
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
    rc = rc == SQLITE_DONE ? BKV_OK : store_db_fail(s, rc, "read request");
    sqlite3_reset(st);
    if (rc == BKV_OK && stale) {
        st = s->st[ST_REQ_DROP];
        bind_blob(st, 1, c->request_id, BKV_REQUEST_ID_LEN);
        bind_blob(st, 2, c->account, BKV_ACCOUNT_KEY_LEN);
        sqlite3_bind_int(st, 3, (int)c->type);
        rc = store_run(s, ST_REQ_DROP, "drop an old request");
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
    return store_run(s, ST_REQ_PUT, "remember request");
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
    store_set_err(s->errmsg, sizeof(s->errmsg),
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
    rv = store_run(s, ST_SET_APPLIED, "store applied index");
    if (rv == BKV_OK)
        rv = store_run(s, ST_COMMIT, "commit");
    if (rv != BKV_OK) {
        int lost = s->pending > unreported;

        memcpy(why, s->errmsg, sizeof(why));
        lose_pending(s, unreported);
        if (lost)
            store_set_err(s->errmsg, sizeof(s->errmsg), "%s; entries after index %llu dropped", why,
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
        return store_no_db(s);
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
        return store_no_db(s);
    if (s->pending == 0) {
        rv = store_run(s, ST_BEGIN, "begin");
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
            rv = store_run(s, ST_REQ_PRUNE, "prune requests");
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
        return store_no_db(s);
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
        rv = store_db_fail(s, rc, "read record");
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
        return store_no_db(s);
    st = s->st[ST_COUNTS];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        uint64_t c = (uint64_t)sqlite3_column_int64(st, 1);

        if (sqlite3_column_int(st, 0))
            *live = c;
        else
            *tombstones = c;
    }
    rc = rc == SQLITE_DONE ? BKV_OK : store_db_fail(s, rc, "count records");
    sqlite3_reset(st);
    return rc;
}
