/*
 * A valid bkv-node configuration for node 2 of a two-member realm, shared by
 * the unit tests (tests/unit/node/test_config.c) and the fuzz seed generator
 * (tests/fuzz/gen_corpus.c), so both start from the same known-good file.
 */
#ifndef BKV_TESTS_CONFIG_SAMPLE_H
#define BKV_TESTS_CONFIG_SAMPLE_H

static const char bkv_config_sample[] = "# a node\n"
                                        "[node]\n"
                                        "id = 2\n"
                                        "dc = dc-a\n"
                                        "raft = 127.0.0.1:7102\n"
                                        "gateway = 127.0.0.1:7202\n"
                                        "admin = 127.0.0.1:7302\n"
                                        "data_dir = /var/lib/bkv/node-2\n"
                                        "\n"
                                        "[hsm]\n"
                                        "token = node-2\n"
                                        "pin_file = /etc/bkv/user.pin\n"
                                        "node_dir = /var/lib/bkv/hsm-2\n"
                                        "realm_dir = /etc/bkv/realm\n"
                                        "[router]\n"
                                        "proof_key_file = /etc/bkv/router-proof.key\n"
                                        "[member 1]\n"
                                        "dc = dc-a\n"
                                        "raft = 127.0.0.1:7101\n"
                                        "gateway = 127.0.0.1:7201\n"
                                        "admin = 127.0.0.1:7301\n"
                                        "snapshot = 127.0.0.1:7401\n"
                                        "[member 2]\n"
                                        "dc = dc-a\n"
                                        "raft = 127.0.0.1:7102\n"
                                        "gateway = 127.0.0.1:7202\n"
                                        "admin = 127.0.0.1:7302\n"
                                        "snapshot = 127.0.0.1:7402\n";

#endif
