# image_bench: image -> bootable ext4, ours against skopeo + umoci + mkfs.ext4.
plfm_add_executable(image_bench
  SOURCES image_bench.cc
  DEPS plfm_image_testing plfm_image)
target_compile_definitions(image_bench PRIVATE
  PLFM_NODE_AGENT_BIN="$<TARGET_FILE:plfm-node-agent>")
add_dependencies(image_bench plfm-node-agent)
