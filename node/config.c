/*
 * bkv-node's configuration file (format in config.h). One pass over the
 * lines fills a table-driven set of keys; a second pass checks what is
 * required and how the pieces fit together. Every refusal names the file,
 * line, section and key. Nothing here does I/O except bkv_node_config_load.
 */
#include "node/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/fileio.h"
#include "node/log.h"
#include "proto/err.h"

#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define MAX_ID         (UINT64_C(1) << 53)

enum kind { K_U64, K_U32, K_STR, K_ADDR, K_PATH, K_LEVEL, K_NO };

struct key {
    const char *section; /* "node", "hsm", "router", "member" */
    const char *name;
    enum kind kind;
    int required;
    size_t offset; /* in struct bkv_node_config, or in struct bkv_conf_member */
    size_t size;   /* of the string field */
    uint64_t min, max;
};

#define NODE(f) offsetof(struct bkv_node_config, f), sizeof(((struct bkv_node_config *)0)->f)
#define MEMB(f) offsetof(struct bkv_conf_member, f), sizeof(((struct bkv_conf_member *)0)->f)

static const struct key keys[] = {
    {"node", "id", K_U64, 1, NODE(id), 1, MAX_ID},
    {"node", "dc", K_STR, 1, NODE(dc), 0, 0},
    {"node", "raft", K_ADDR, 1, NODE(raft), 0, 0},
    {"node", "gateway", K_ADDR, 1, NODE(gateway), 0, 0},
    {"node", "admin", K_ADDR, 1, NODE(admin), 0, 0},
    {"node", "data_dir", K_PATH, 1, NODE(data_dir), 0, 0},
    {"node", "max_attempts", K_U32, 0, NODE(max_attempts), 1, 1000000},
    {"node", "snapshot_threshold", K_U32, 0, NODE(snapshot_threshold), 16, 100000000},
    {"node", "snapshot_trailing", K_U32, 0, NODE(snapshot_trailing), 1, 100000000},
    {"node", "election_timeout_ms", K_U32, 0, NODE(election_timeout_ms), 100, 60000},
    {"node", "heartbeat_timeout_ms", K_U32, 0, NODE(heartbeat_timeout_ms), 10, 10000},
    {"node", "login_timeout_s", K_U32, 0, NODE(login_timeout_s), 1, 3600},
    {"node", "max_sessions", K_U32, 0, NODE(max_sessions), 1, 1000000},
    {"node", "log_level", K_LEVEL, 0, NODE(log_level), 0, 0},
    {"hsm", "module", K_PATH, 0, NODE(hsm_module), 0, 0},
    {"hsm", "token", K_STR, 1, NODE(hsm_token), 0, 0},
    {"hsm", "pin_file", K_PATH, 1, NODE(hsm_pin_file), 0, 0},
    {"hsm", "node_dir", K_PATH, 1, NODE(hsm_node_dir), 0, 0},
    {"hsm", "realm_dir", K_PATH, 1, NODE(realm_dir), 0, 0},
    {"router", "proof_key_file", K_PATH, 1, NODE(proof_key_file), 0, 0},
    {"admin", "token_file", K_PATH, 0, NODE(admin_token_file), 0, 0},
    {"member", "dc", K_STR, 1, MEMB(dc), 0, 0},
    {"member", "raft", K_ADDR, 1, MEMB(raft), 0, 0},
    {"member", "gateway", K_ADDR, 1, MEMB(gateway), 0, 0},
    {"member", "admin", K_ADDR, 1, MEMB(admin), 0, 0},
    {"member", "snapshot", K_ADDR, 1, MEMB(snapshot), 0, 0},
    {"member", "initial", K_NO, 0, MEMB(later), 0, 0},
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

struct parser {
    const char *name;
    char *err;
    size_t err_cap;
    struct bkv_node_config *cfg;
    unsigned seen_node[N_KEYS];                         /* line where set, 0 if not */
    unsigned seen_member[BKV_CONF_MAX_MEMBERS][N_KEYS]; /* per member */
    unsigned member_line[BKV_CONF_MAX_MEMBERS];
};

__attribute__((format(printf, 3, 4))) static int fail(struct parser *p, unsigned line,
                                                      const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->err != NULL && p->err_cap > 0) {
        if (line > 0)
            snprintf(p->err, p->err_cap, "%s:%u: %s", p->name, line, msg);
        else
            snprintf(p->err, p->err_cap, "%s: %s", p->name, msg);
    }
    return BKV_ERR_FORMAT;
}

int bkv_conf_address_valid(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return 0;
    if (s[0] == '[') {
        if (colon[-1] != ']' || colon - s < 3)
            return 0;
    } else {
        for (const char *c = s; c < colon; c++)
            if (*c == ':' || *c == '[' || *c == ']')
                return 0;
    }
    for (const char *c = s; *c != '\0'; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return 0;
    const char *port = colon + 1;
    if (*port == '\0' || strlen(port) > 5)
        return 0;
    unsigned long v = 0;
    for (const char *c = port; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        v = v * 10 + (unsigned long)(*c - '0');
    }
    return v >= 1 && v <= 65535;
}

static int parse_uint(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    if (*v == '\0' || strlen(v) > 20)
        return 0;
    uint64_t x = 0;
    for (const char *c = v; *c != '\0'; c++) {
        if (*c < '0' || *c > '9')
            return 0;
        if (x > (UINT64_MAX - 9) / 10)
            return 0;
        x = x * 10 + (uint64_t)(*c - '0');
    }
    if (x < min || x > max)
        return 0;
    *out = x;
    return 1;
}

static int set_value(struct parser *p, unsigned line, const char *section, const struct key *k,
                     void *base, const char *v)
{
    uint8_t *field = (uint8_t *)base + k->offset;
    uint64_t x = 0;
    switch (k->kind) {
    case K_U64:
    case K_U32:
        if (!parse_uint(v, k->min, k->max, &x))
            return fail(p, line, "[%s] %s: \"%s\" is not a number from %llu to %llu", section,
                        k->name, v, (unsigned long long)k->min, (unsigned long long)k->max);
        if (k->kind == K_U64)
            *(uint64_t *)(void *)field = x;
        else if (k->size == sizeof(uint32_t))
            *(uint32_t *)(void *)field = (uint32_t)x;
        else
            *(unsigned *)(void *)field = (unsigned)x;
        return BKV_OK;
    case K_LEVEL:
        if (bkv_log_level_parse(v, (enum bkv_log_level *)(void *)field) != 0)
            return fail(p, line, "[%s] %s: \"%s\" is not one of error, warn, info, debug", section,
                        k->name, v);
        return BKV_OK;
    case K_NO: /* yes|no, stored inverted: "no" sets the flag */
        if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
            return fail(p, line, "[%s] %s: \"%s\" is not yes or no", section, k->name, v);
        *(int *)(void *)field = strcmp(v, "no") == 0;
        return BKV_OK;
    case K_ADDR:
        if (!bkv_conf_address_valid(v))
            return fail(p, line, "[%s] %s: \"%s\" is not host:port with a port from 1 to 65535",
                        section, k->name, v);
        break;
    case K_PATH:
        if (v[0] != '/')
            return fail(p, line, "[%s] %s: \"%s\" must be an absolute path", section, k->name, v);
        for (const char *c = v; *c != '\0'; c++)
            if ((unsigned char)*c < ' ' || (unsigned char)*c == 0x7f)
                return fail(p, line, "[%s] %s: contains a control character", section, k->name);
        break;
    case K_STR:
        if (*v == '\0')
            return fail(p, line, "[%s] %s: must not be empty", section, k->name);
        for (const char *c = v; *c != '\0'; c++)
            if ((unsigned char)*c < ' ' || (unsigned char)*c == 0x7f)
                return fail(p, line, "[%s] %s: contains a control character", section, k->name);
        break;
    }
    if (strlen(v) >= k->size)
        return fail(p, line, "[%s] %s: longer than %zu bytes", section, k->name, k->size - 1);
    memcpy(field, v, strlen(v) + 1);
    return BKV_OK;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Section header "[name]" or "[member N]": sets *sec and *member (-1 if not a member). */
static int parse_section(struct parser *p, unsigned line, char *s, const char **sec, int *member)
{
    size_t n = strlen(s);
    if (n < 3 || s[n - 1] != ']')
        return fail(p, line, "a section header must look like [node] or [member 2]");
    s[n - 1] = '\0';
    char *name = trim(s + 1);
    *member = -1;
    static const char *const plain[] = {"node", "hsm", "router", "admin"};
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++)
        if (strcmp(name, plain[i]) == 0) {
            *sec = plain[i];
            return BKV_OK;
        }
    if (strncmp(name, "member", 6) != 0 || (name[6] != ' ' && name[6] != '\t'))
        return fail(p, line, "unknown section [%s] (known: node, hsm, router, admin, member N)", name);
    uint64_t id = 0;
    char *num = trim(name + 6);
    if (!parse_uint(num, 1, MAX_ID, &id))
        return fail(p, line, "[member %s]: the member id must be a number from 1 to 2^53", num);
    struct bkv_node_config *cfg = p->cfg;
    for (size_t i = 0; i < cfg->n_members; i++)
        if (cfg->members[i].id == id)
            return fail(p, line, "[member %llu] appears twice (first on line %u)",
                        (unsigned long long)id, p->member_line[i]);
    if (cfg->n_members == BKV_CONF_MAX_MEMBERS)
        return fail(p, line, "more than %d members", BKV_CONF_MAX_MEMBERS);
    p->member_line[cfg->n_members] = line;
    cfg->members[cfg->n_members].id = id;
    *member = (int)cfg->n_members++;
    *sec = "member";
    return BKV_OK;
}

static int parse_line(struct parser *p, unsigned line, char *s, const char **sec, int *member)
{
    s = trim(s);
    if (*s == '\0' || *s == '#' || *s == ';')
        return BKV_OK;
    if (*s == '[')
        return parse_section(p, line, s, sec, member);
    char *eq = strchr(s, '=');
    if (eq == NULL)
        return fail(p, line, "expected key = value or a [section]");
    *eq = '\0';
    char *key = trim(s), *value = trim(eq + 1);
    if (*sec == NULL)
        return fail(p, line, "\"%s\" before any [section]", key);
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(keys[i].section, *sec) != 0 || strcmp(keys[i].name, key) != 0)
            continue;
        unsigned *seen = *member >= 0 ? &p->seen_member[*member][i] : &p->seen_node[i];
        char label[48];
        if (*member >= 0)
            snprintf(label, sizeof(label), "member %llu",
                     (unsigned long long)p->cfg->members[*member].id);
        else
            snprintf(label, sizeof(label), "%s", *sec);
        if (*seen != 0)
            return fail(p, line, "[%s] %s: given twice (first on line %u)", label, key, *seen);
        *seen = line;
        void *base = *member >= 0 ? (void *)&p->cfg->members[*member] : (void *)p->cfg;
        return set_value(p, line, label, &keys[i], base, value);
    }
    return fail(p, line, "[%s] unknown key \"%s\"", *member >= 0 ? "member" : *sec, key);
}

static int check(struct parser *p)
{
    struct bkv_node_config *cfg = p->cfg;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (!keys[i].required)
            continue;
        if (strcmp(keys[i].section, "member") != 0) {
            if (p->seen_node[i] == 0)
                return fail(p, 0, "[%s] %s: missing (required)", keys[i].section, keys[i].name);
            continue;
        }
        for (size_t m = 0; m < cfg->n_members; m++)
            if (p->seen_member[m][i] == 0)
                return fail(p, p->member_line[m], "[member %llu] %s: missing (required)",
                            (unsigned long long)cfg->members[m].id, keys[i].name);
    }
    if (cfg->n_members == 0)
        return fail(p, 0, "no [member N] sections: list every voter of the cluster");
    const struct bkv_conf_member *self = bkv_node_config_member(cfg, cfg->id);
    if (self == NULL)
        return fail(p, p->seen_node[0], "[node] id: %llu is not one of the [member N] sections",
                    (unsigned long long)cfg->id);
    if (strcmp(self->raft, cfg->raft) != 0)
        return fail(p, p->seen_node[2],
                    "[node] raft: \"%s\" differs from [member %llu] raft \"%s\"", cfg->raft,
                    (unsigned long long)cfg->id, self->raft);
    if (strcmp(self->gateway, cfg->gateway) != 0 || strcmp(self->admin, cfg->admin) != 0)
        return fail(p, p->seen_node[3],
                    "[node] gateway/admin: differ from [member %llu] gateway/admin; "
                    "routers and operators would look for this node elsewhere",
                    (unsigned long long)cfg->id);
    for (size_t a = 0; a < cfg->n_members; a++)
        for (size_t b = a + 1; b < cfg->n_members; b++)
            if (strcmp(cfg->members[a].raft, cfg->members[b].raft) == 0)
                return fail(p, p->member_line[b],
                            "[member %llu] raft: \"%s\" is also member %llu's address",
                            (unsigned long long)cfg->members[b].id, cfg->members[b].raft,
                            (unsigned long long)cfg->members[a].id);
    if (strcmp(cfg->gateway, cfg->raft) == 0 || strcmp(cfg->admin, cfg->raft) == 0 ||
        strcmp(cfg->admin, cfg->gateway) == 0)
        return fail(p, 0, "[node] raft, gateway and admin must be three different addresses");
    return BKV_OK;
}

int bkv_node_config_parse(const char *text, size_t len, const char *name,
                          struct bkv_node_config *cfg, char *err, size_t err_cap)
{
    if (text == NULL || cfg == NULL)
        return BKV_ERR_INVALID;
    struct parser *p = calloc(1, sizeof(*p));
    char *copy = NULL;
    int rc;
    if (p == NULL)
        return BKV_ERR_NOMEM;
    p->name = name != NULL ? name : "config";
    p->err = err;
    p->err_cap = err_cap;
    p->cfg = cfg;
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_attempts = 10;
    cfg->snapshot_threshold = 1024;
    cfg->snapshot_trailing = 128;
    cfg->election_timeout_ms = 1000;
    cfg->heartbeat_timeout_ms = 100;
    cfg->login_timeout_s = 60;
    cfg->max_sessions = 10000;
    cfg->log_level = BKV_LOG_INFO;
    snprintf(cfg->hsm_module, sizeof(cfg->hsm_module), "%s", DEFAULT_MODULE);
    if (len > BKV_CONF_MAX_BYTES) {
        fail(p, 0, "larger than %d bytes", BKV_CONF_MAX_BYTES);
        rc = BKV_ERR_LENGTH;
        goto out;
    }
    if (memchr(text, '\0', len) != NULL) {
        rc = fail(p, 0, "contains a NUL byte; not a text file");
        goto out;
    }
    copy = malloc(len + 1);
    if (copy == NULL) {
        rc = BKV_ERR_NOMEM;
        goto out;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    const char *sec = NULL;
    int member = -1;
    unsigned line = 0;
    char *save = copy;
    rc = BKV_OK;
    while (rc == BKV_OK && save != NULL) {
        char *nl = strchr(save, '\n');
        if (nl != NULL)
            *nl = '\0';
        line++;
        rc = parse_line(p, line, save, &sec, &member);
        save = nl != NULL ? nl + 1 : NULL;
    }
    if (rc == BKV_OK)
        rc = check(p);
out:
    free(copy);
    free(p);
    return rc;
}

int bkv_node_config_load(const char *path, struct bkv_node_config *cfg, char *err, size_t err_cap)
{
    uint8_t *text = NULL;
    size_t len = 0;
    char msg[256];
    int rc = bkv_file_read(path, BKV_CONF_MAX_BYTES, &text, &len, msg, sizeof(msg));
    if (rc != BKV_OK) {
        if (err != NULL && err_cap > 0)
            snprintf(err, err_cap, "%s: cannot read the configuration: %s", path,
                     rc == BKV_ERR_LENGTH ? "larger than 64 KiB" : msg);
        return rc;
    }
    rc = bkv_node_config_parse((const char *)text, len, path, cfg, err, err_cap);
    free(text);
    return rc;
}

const struct bkv_conf_member *bkv_node_config_member(const struct bkv_node_config *cfg, uint64_t id)
{
    for (size_t i = 0; i < cfg->n_members; i++)
        if (cfg->members[i].id == id)
            return &cfg->members[i];
    return NULL;
}
