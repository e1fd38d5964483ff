/*
 * node/config: bkv-node's configuration file. A valid file parses with its
 * defaults; each kind of mistake is refused with a message naming the line,
 * the section, the key and the problem.
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "node/config.h"
#include "tests/unit/node/config_sample.h"
#include "proto/err.h"

static struct bkv_node_config cfg;
static char err[512];

static int parse(const char *text)
{
    err[0] = '\0';
    return bkv_node_config_parse(text, strlen(text), "node.conf", &cfg, err, sizeof(err));
}

static void test_good(void)
{
    CU_ASSERT_EQUAL_FATAL(parse(bkv_config_sample), BKV_OK);
    CU_ASSERT_EQUAL(cfg.id, 2);
    CU_ASSERT_STRING_EQUAL(cfg.dc, "dc-a");
    CU_ASSERT_STRING_EQUAL(cfg.gateway, "127.0.0.1:7202");
    CU_ASSERT_EQUAL(cfg.max_attempts, 10);
    CU_ASSERT_EQUAL(cfg.login_timeout_s, 60);
    CU_ASSERT_STRING_EQUAL(cfg.hsm_module, "/usr/lib/softhsm/libsofthsm2.so");
    CU_ASSERT_EQUAL(cfg.n_members, 2);
    CU_ASSERT_STRING_EQUAL(bkv_node_config_member(&cfg, 2)->snapshot, "127.0.0.1:7402");
    CU_ASSERT_STRING_EQUAL(bkv_node_config_member(&cfg, 1)->snapshot, "127.0.0.1:7401");
    CU_ASSERT_PTR_NULL(bkv_node_config_member(&cfg, 3));
    CU_ASSERT_EQUAL(bkv_node_config_member(&cfg, 1)->later, 0);
    char later[sizeof(bkv_config_sample) + 32];
    snprintf(later, sizeof(later), "%sinitial = no\n", bkv_config_sample);
    CU_ASSERT_EQUAL_FATAL(parse(later), BKV_OK);
    CU_ASSERT_EQUAL(bkv_node_config_member(&cfg, 2)->later, 1);
}

/* Replace the first occurrence of from in bkv_config_sample by to, parse, expect an error
 * containing want. */
static void expect(const char *from, const char *to, const char *want)
{
    char text[4096];
    const char *at = strstr(bkv_config_sample, from);
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    size_t pre = (size_t)(at - bkv_config_sample);
    snprintf(text, sizeof(text), "%.*s%s%s", (int)pre, bkv_config_sample, to, at + strlen(from));
    int rc = parse(text);
    CU_ASSERT_NOT_EQUAL(rc, BKV_OK);
    if (strstr(err, want) == NULL) {
        fprintf(stderr, "\nwanted \"%s\" in \"%s\"\n", want, err);
        CU_FAIL("error message does not name the problem");
    }
}

static void test_mistakes(void)
{
    expect("id = 2\n", "id = 0\n", "node.conf:3: [node] id: \"0\" is not a number from 1");
    expect("id = 2\n", "id = two\n", "[node] id: \"two\" is not a number");
    expect("id = 2\n", "id = 3\n", "[node] id: 3 is not one of the [member N] sections");
    expect("id = 2\n", "", "[node] id: missing (required)");
    expect("raft = 127.0.0.1:7102\n", "raft = 127.0.0.1\n",
           "node.conf:5: [node] raft: \"127.0.0.1\" is not host:port");
    expect("raft = 127.0.0.1:7102\n", "raft = 127.0.0.1:70000\n", "is not host:port");
    expect("raft = 127.0.0.1:7102\n", "raft = 127.0.0.1:7109\n",
           "[node] raft: \"127.0.0.1:7109\" differs from [member 2] raft");
    expect("data_dir = /var/lib/bkv/node-2\n", "data_dir = var/lib\n",
           "[node] data_dir: \"var/lib\" must be an absolute path");
    expect("token = node-2\n", "token = 012345678901234567890123456789012\n",
           "[hsm] token: longer than 32 bytes");
    expect("dc = dc-a\n", "dc = dc-a\ndc = dc-b\n", "[node] dc: given twice (first on line 4)");
    expect("[router]\n", "[routr]\n", "unknown section [routr]");
    expect("[hsm]\n", "[hsm]\ncolour = blue\n", "[hsm] unknown key \"colour\"");
    expect("# a node\n", "stray\n", "node.conf:1: expected key = value or a [section]");
    expect("# a node\n", "id = 1\n", "\"id\" before any [section]");
    expect("[member 2]\n", "[member 1]\n", "[member 1] appears twice (first on line 17)");
    expect("[member 2]\n", "[member x]\n", "the member id must be a number");
    expect("admin = 127.0.0.1:7301\n", "", "[member 1] admin: missing (required)");
    expect("snapshot = 127.0.0.1:7401\n", "", "[member 1] snapshot: missing (required)");
    expect("snapshot = 127.0.0.1:7401\n", "snapshot = 127.0.0.1:7401\ninitial = maybe\n",
           "[member 1] initial: \"maybe\" is not yes or no");
    expect("raft = 127.0.0.1:7101\n", "raft = 127.0.0.1:7102\n",
           "raft: \"127.0.0.1:7102\" is also member 1's address");
    expect("[node]\n", "[node]\nmax_attempts = 0\n", "[node] max_attempts: \"0\" is not a number");
    expect("[node]\n", "[node]\nlog_level = loud\n", "[node] log_level: \"loud\" is not one of");
    expect("admin = 127.0.0.1:7302\n", "admin = 127.0.0.1:7303\n",
           "[node] gateway/admin: differ from [member 2] gateway/admin");
    expect("data_dir = /var/lib/bkv/node-2\n", "data_dir = /var/lib/\x01\n",
           "[node] data_dir: contains a control character");
    expect("proof_key_file = /etc/bkv/router-proof.key\n", "", "[router] proof_key_file: missing");
}

static void test_limits(void)
{
    static char big[BKV_CONF_MAX_BYTES + 2];
    memset(big, '#', sizeof(big) - 1);
    CU_ASSERT_EQUAL(bkv_node_config_parse(big, sizeof(big) - 1, "big", &cfg, err, sizeof(err)),
                    BKV_ERR_LENGTH);
    char nul[] = "[node]\nid = 1\0\n";
    CU_ASSERT_EQUAL(bkv_node_config_parse(nul, sizeof(nul) - 1, "nul", &cfg, err, sizeof(err)),
                    BKV_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "NUL byte"));
    CU_ASSERT_EQUAL(bkv_node_config_load("/nonexistent/node.conf", &cfg, err, sizeof(err)),
                    BKV_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/node.conf: cannot read the configuration"));
    CU_ASSERT_TRUE(bkv_conf_address_valid("[::1]:80"));
    CU_ASSERT_FALSE(bkv_conf_address_valid("::1:80"));
    CU_ASSERT_FALSE(bkv_conf_address_valid(":80"));
    CU_ASSERT_FALSE(bkv_conf_address_valid("host:0"));
    CU_ASSERT_FALSE(bkv_conf_address_valid("host:8x"));
    CU_ASSERT_FALSE(bkv_conf_address_valid("ho st:80"));
}

static CU_TestInfo tests[] = {
    {"a valid file and its defaults", test_good},
    {"every mistake is named with line, section and key", test_mistakes},
    {"size limit, NUL bytes, unreadable file, addresses", test_limits},
    CU_TEST_INFO_NULL,
};

int main(void)
{
    return bkv_test_main("node_config", tests, NULL, NULL);
}
