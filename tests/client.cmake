# client tests: libbkv's HTTP client and vault calls against an in-test fake
# router (no cluster), and the bkv CLI's usage, help and exit codes.
add_library(bkv_client_fixture STATIC unit/client/fake_router.c)
target_include_directories(bkv_client_fixture PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/unit/client)
target_compile_options(bkv_client_fixture PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv_client_fixture PUBLIC Threads::Threads)

bkv_unit_test(client_http unit/client/test_http.c bkv_client bkv_client_fixture)
bkv_unit_test(client_vault unit/client/test_vault.c bkv_client bkv_client_fixture)

add_test(NAME cli/bkv COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/bkv_cli.sh $<TARGET_FILE:bkv>)
