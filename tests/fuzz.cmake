# libFuzzer targets, one per parser (tests/fuzz/, README.md there), built only with
#   CC=clang-14 cmake -S . -B build-fuzz -DBKV_FUZZ=ON
# in a build directory of their own: then EVERY target of the project is compiled with
# -fsanitize=fuzzer-no-link,address,undefined (so the parsers are instrumented for
# coverage) and linked with -fsanitize=address,undefined; the fuzz targets link libFuzzer.
# scripts/fuzz.sh configures, builds and runs them. CTest runs each target once over its
# committed corpus (tests fuzz/<target>): crash inputs kept there fail until fixed.
option(BKV_FUZZ "Build the libFuzzer targets (clang only); instruments the whole project" OFF)
set(BKV_FUZZ_EXTRA_CFLAGS "" CACHE STRING
    "Extra compile options for every target of a BKV_FUZZ build, after the project's own")
if(NOT BKV_FUZZ)
  return()
endif()
if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "BKV_FUZZ=ON needs clang with libFuzzer: configure a fresh build "
                      "directory with CC=clang-14 (package libclang-rt-14-dev)")
endif()

# Applied at the end of the top-level directory, when every target of the project exists,
# so the instrumentation reaches the libraries whatever order they are defined in.
function(bkv_fuzz_instrument dir)
  set(cflags -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
             -fno-omit-frame-pointer ${BKV_FUZZ_EXTRA_CFLAGS})
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  foreach(t IN LISTS targets)
    get_target_property(type ${t} TYPE)
    get_target_property(imported ${t} IMPORTED)
    if(imported OR NOT type MATCHES "^(STATIC_LIBRARY|OBJECT_LIBRARY|SHARED_LIBRARY|MODULE_LIBRARY|EXECUTABLE)$")
      continue()
    endif()
    target_compile_options(${t} PRIVATE ${cflags})
    if(type MATCHES "^(SHARED_LIBRARY|MODULE_LIBRARY|EXECUTABLE)$")
      target_link_options(${t} PRIVATE -fsanitize=address,undefined)
    endif()
  endforeach()
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(d IN LISTS subdirs)
    bkv_fuzz_instrument(${d})
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL bkv_fuzz_instrument
               ${PROJECT_SOURCE_DIR})

set(BKV_FUZZ_DIR ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)

# The fixed keys and states shared by the targets and the corpus generator.
add_library(bkv_fuzz_fixtures STATIC fuzz/fixtures.c)
target_include_directories(bkv_fuzz_fixtures PUBLIC ${BKV_FUZZ_DIR} ${PROJECT_SOURCE_DIR})
target_compile_options(bkv_fuzz_fixtures PRIVATE ${BKV_C_FLAGS})
target_link_libraries(bkv_fuzz_fixtures PUBLIC bkv_proto)

add_custom_target(bkv_fuzz)

# bkv_fuzz_target(NAME LIBS...): tests/fuzz/NAME.c as a libFuzzer binary, and a CTest that
# runs it once over tests/fuzz/corpus/NAME.
function(bkv_fuzz_target name)
  add_executable(${name} fuzz/${name}.c)
  target_compile_options(${name} PRIVATE ${BKV_C_FLAGS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(${name} PRIVATE bkv_fuzz_fixtures ${ARGN})
  add_dependencies(bkv_fuzz ${name})
  add_test(NAME fuzz/${name}
           COMMAND ${name} -runs=0 -timeout=10 -rss_limit_mb=2048 ${BKV_FUZZ_DIR}/corpus/${name})
endfunction()

bkv_fuzz_target(fuzz_envelope bkv_proto)
bkv_fuzz_target(fuzz_keyconfig bkv_proto)
bkv_fuzz_target(fuzz_msg bkv_proto)
bkv_fuzz_target(fuzz_opaque bkv_proto)
bkv_fuzz_target(fuzz_cmd bkv_consensus)
bkv_fuzz_target(fuzz_token bkv_token)
bkv_fuzz_target(fuzz_config bkv_node_util)
bkv_fuzz_target(fuzz_stream bkv_proto)
bkv_fuzz_target(fuzz_http bkv_http bkv_client Threads::Threads)

# The seed corpus generator: fuzz-gen-corpus tests/fuzz/corpus (scripts/fuzz.sh --gen-corpus).
add_executable(fuzz-gen-corpus fuzz/gen_corpus.c)
target_compile_options(fuzz-gen-corpus PRIVATE ${BKV_C_FLAGS})
target_link_libraries(fuzz-gen-corpus PRIVATE bkv_fuzz_fixtures bkv_token bkv_consensus)
add_dependencies(bkv_fuzz fuzz-gen-corpus)
