# deploy_bench: rolling deploys of N instances through `vt dev` with real
# microVMs, with the drain gate's default grace and with grace 0 (root).
plfm_add_executable(deploy_bench
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/deploy_bench.cc
  DEPS plfm_vt_dev_driver plfm_vt_cli)
target_compile_definitions(deploy_bench PRIVATE PLFM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_dependencies(deploy_bench vt plfm-control-plane plfm-node-agent plfm-ingress vt-init hello)
