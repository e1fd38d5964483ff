# bkv-node: configuration file, gateway, admin endpoint, main.
add_executable(bkv-node bkv_node.c gateway.c admin.c)
target_compile_options(bkv-node PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv-node PRIVATE bkv_http bkv_token bkv_node_util bkv_consensus bkv_hsm
                                       bkv_proto PkgConfig::JANSSON PkgConfig::LIBUV)
