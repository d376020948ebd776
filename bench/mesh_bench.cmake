# mesh_bench: the WireGuard mesh in network namespaces with wireguard-go:
# iperf3 through the mesh against the bare underlay, plan -> first
# handshake, syncconf at 200 peers, and key rotations under ping (root; see
# mesh_bench.cc).
find_package(PkgConfig REQUIRED)
pkg_check_modules(MESH_BENCH_SODIUM REQUIRED IMPORTED_TARGET libsodium)
plfm_add_executable(mesh_bench
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/mesh_bench.cc
  DEPS plfm_agent plfm_microvm plfm_testing PkgConfig::MESH_BENCH_SODIUM)
target_include_directories(mesh_bench PRIVATE ${PROJECT_SOURCE_DIR}/services/node-agent/test)
