# vault.c, http.c and the bkv CLI: the vault calls of libbkv, its blocking
# HTTP/1.1 client (llhttp, built once in node/CMakeLists.txt), and `bkv`.
target_sources(bkv_client PRIVATE vault.c http.c)
target_link_libraries(bkv_client PRIVATE bkv_llhttp)

add_executable(bkv bkv_cli.c)
target_compile_options(bkv PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv PRIVATE bkv_client)
