target_sources(bkv_client PRIVATE keytext.c backup.c)
