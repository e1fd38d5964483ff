# The backup stream: proto/stream.c, and client/keytext.c and client/backup.c in libbkv.
bkv_unit_test(proto_stream unit/proto/test_stream.c)
bkv_unit_test(client_keytext unit/client/test_keytext.c bkv_client)
bkv_unit_test(client_backup unit/client/test_backup.c bkv_client Threads::Threads)
# 130 MiB through three pipes, also under the sanitizers.
set_tests_properties(unit/client_backup PROPERTIES TIMEOUT 900)

# The backup benchmark, bkv_bench_backup() (bench/bench_backup.h), run as `bkv-bench backup`.
add_library(bkv_bench_backup STATIC bench/bench_backup.c)
target_include_directories(bkv_bench_backup PUBLIC ${PROJECT_SOURCE_DIR})
target_compile_options(bkv_bench_backup PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv_bench_backup PUBLIC bkv_client)
target_link_libraries(bkv-bench PRIVATE bkv_bench_backup)
# Not a timed test: it only checks that the benchmark runs to the end.
add_test(NAME bench/backup-smoke COMMAND bkv-bench backup --megabytes 2)
