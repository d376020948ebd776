# volume_rpo_bench: the steady-state rpo_seconds of a volume under its backup
# schedule, through `vt dev` with a real microVM and restic (root).
plfm_add_executable(volume_rpo_bench
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/volume_rpo_bench.cc
  DEPS plfm_vt_dev_driver plfm_vt_cli)
target_compile_definitions(volume_rpo_bench PRIVATE PLFM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_dependencies(volume_rpo_bench vt plfm-control-plane plfm-node-agent plfm-ingress vt-init hello)
