# bkv-node's own suites and the end-to-end tests (real processes on loopback).
bkv_unit_test(node_config unit/node/test_config.c bkv_node_util)

# bkv-probe: the e2e tests' client, which exposes every step of a session.
add_executable(bkv-probe e2e/probe.c)
target_compile_options(bkv-probe PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv-probe PRIVATE bkv_client bkv_token bkv_proto)

# Real processes: scripts/cluster.sh brings up 3 bkv-node processes and a
# bkv-router on loopback, each script on its own ports. Heavy (HSM ceremony,
# Raft, kill -9), so they run alone.
add_test(NAME e2e/session COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/session.sh ${CMAKE_BINARY_DIR})
add_test(NAME e2e/failover COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/e2e/failover.sh ${CMAKE_BINARY_DIR})
set_tests_properties(e2e/session e2e/failover PROPERTIES RUN_SERIAL TRUE TIMEOUT 600)
set_tests_properties(e2e/session PROPERTIES ENVIRONMENT E2E_BASE_PORT=21000)
set_tests_properties(e2e/failover PROPERTIES ENVIRONMENT E2E_BASE_PORT=22000)
