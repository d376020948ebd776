# ingress_bench: plfm-ingress against haproxy and nginx (SNI passthrough),
# same backends, same run, at 1 and 2 workers. Needs haproxy, nginx,
# libnginx-mod-stream and wrk.
plfm_add_executable(ingress_bench
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/ingress_bench.cc
  DEPS plfm_ingress_testing)
target_compile_definitions(ingress_bench PRIVATE PLFM_INGRESS_BIN="$<TARGET_FILE:plfm-ingress>")
add_dependencies(ingress_bench plfm-ingress)
