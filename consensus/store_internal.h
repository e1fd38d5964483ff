/*
 * consensus/store internals shared by store.c (open, apply, reads) and
 * store_image.c (state hash, snapshot images): the private struct bkv_store,
 * its statement ids and the few helpers both call. Nothing outside
 * consensus/ may include this header; like the store, everything here runs
 * on the thread that owns the handle.
 */
#ifndef BKV_CONSENSUS_STORE_INTERNAL_H
#define BKV_CONSENSUS_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "consensus/store.h"

/* The prepared statements cached on the handle (their SQL is in store.c). */
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

/* store.c: format into buf[0..cap-1]; nothing if buf is NULL or cap is 0. */
void store_set_err(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* store.c: a SQLite code as a BKV code (BKV_ERR_NOSPACE for SQLITE_FULL, else BKV_ERR_IO). */
int store_map_rc(int rc);

/* store.c: record the SQLite failure rc of what on s; returns the BKV code. */
int store_db_fail(struct bkv_store *s, int rc, const char *what);

/* store.c: run statement id without results to completion and reset it. */
int store_run(struct bkv_store *s, int id, const char *what);

/* store.c: finalize the cached statements (s->db stays open). */
void store_finalize_all(struct bkv_store *s);

/* store.c: harden a connection: no writable schema tricks, no functions from the schema. */
void store_harden(sqlite3 *db);

/* store.c: check that db holds exactly our schema, version and a meta row; read applied. */
int store_check_schema(sqlite3 *db, const char *path, uint64_t *applied, char *err, size_t cap);

/* store.c: open s->path: pragmas, schema (created if the file is empty), statements. */
int store_db_open(struct bkv_store *s, char *err, size_t cap);

/* store.c: the error of a call on a handle a failed restore left without a database. */
int store_no_db(struct bkv_store *s);

#endif
