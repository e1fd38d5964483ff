# bkv-node: configuration file, gateway, admin endpoint, main. The gateway is
# gateway.c (HTTP entry, loop stages, answers) with gateway_work.c (worker
# stages), gateway_session.c (login sessions) and gateway_ticket.c (request ids
# and registration tickets); gateway_internal.h is private to these four.
add_executable(bkv-node bkv_node.c gateway.c gateway_work.c gateway_session.c gateway_ticket.c
                        admin.c)
target_compile_options(bkv-node PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv-node PRIVATE bkv_http bkv_token bkv_node_util bkv_consensus bkv_hsm
                                       bkv_proto PkgConfig::JANSSON PkgConfig::LIBUV)
