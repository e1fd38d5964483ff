# The router's side: the HTTP layer, tokens and proofs, the router in-process,
# and the bkv-router process itself.
bkv_unit_test(node_token unit/node/test_token.c bkv_token)
bkv_unit_test(node_http unit/node/test_http.c bkv_http)
bkv_unit_test(node_router unit/node/test_router.c bkv_router)
# The real bkv-router process, with keys, tokens and a key config from bkv-admin.
add_test(NAME cli/router COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/router.sh
                                 $<TARGET_FILE:bkv-router> $<TARGET_FILE:bkv-admin>)
set_tests_properties(cli/router PROPERTIES TIMEOUT 300)
