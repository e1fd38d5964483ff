# The router's side of node/: the shared libuv HTTP layer, account tokens and
# router proofs, bkv-router, and bkv-admin.

# HTTP/1.1 server (http.c) and client (http_client.c) on libuv and llhttp, with
# what both share in http_common.c (bkv-router and bkv-node).
# llhttp in strict mode: Debian's default lenient build accepts header names
# with spaces and "Name : value", which RFC 9112 requires a server to refuse
# (request smuggling through a front end).
target_compile_definitions(bkv_llhttp PUBLIC LLHTTP_STRICT_MODE=1)
add_library(bkv_http STATIC http.c http_client.c http_common.c)
target_include_directories(bkv_http PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(bkv_http PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv_http PUBLIC bkv_proto bkv_llhttp PkgConfig::LIBUV)

# Account tokens, the router proof and the router key files. The node's gateway
# links it for bkv_router_proof_verify and bkv_router_proof_key_load.
add_library(bkv_token STATIC token.c)
target_include_directories(bkv_token PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(bkv_token PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv_token PUBLIC bkv_proto)

# bkv-router: the front end. It must never hold or link anything that can open
# an envelope: it links NO HSM code (no bkv_hsm, no bkv_consensus, no PKCS#11),
# only the HTTP layer, tokens and proto's pure codecs (for the key config
# check). tests/cli/router.sh checks the linked binary for hsm symbols.
add_library(bkv_router STATIC router.c)
target_include_directories(bkv_router PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(bkv_router PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv_router PUBLIC bkv_http bkv_token bkv_proto)

add_executable(bkv-router bkv_router.c)
target_compile_options(bkv-router PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv-router PRIVATE bkv_router bkv_node_util)

# bkv-admin: HSM custody, router keys, account tokens, the realm key config.
add_executable(bkv-admin bkv_admin.c admin_status.c)
target_compile_options(bkv-admin PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv-admin PRIVATE bkv_node_util bkv_token bkv_hsm bkv_client bkv_proto
                                        PkgConfig::JANSSON)
