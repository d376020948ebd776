# Contract checks of the API documents (api/openapi/openapi.yaml, api/schemas)
# and the schema-validation support library that the API tests link.
# Included from services/control-plane/CMakeLists.txt.
find_package(yaml-cpp REQUIRED)
find_package(valijson REQUIRED)  # header-only; its target enables valijson's exceptions

# Loads the contract and validates documents against it (test/schema_support.h).
add_library(plfm_cp_schema_support STATIC ${CMAKE_CURRENT_SOURCE_DIR}/test/schema_support.cc)
target_include_directories(plfm_cp_schema_support PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/test)
target_link_libraries(plfm_cp_schema_support
  PUBLIC yaml-cpp nlohmann_json::nlohmann_json plfm_core
  PRIVATE valijson)
target_compile_definitions(plfm_cp_schema_support PRIVATE PLFM_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
plfm_test_defaults(plfm_cp_schema_support)

# The sample documents (one per schema and route), compiled once for both tests.
plfm_add_test_library(plfm_cp_contract_samples
  SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/test/contract_samples.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/test/contract_samples_routes.cc
  PUBLIC_DEPS plfm_core)
target_include_directories(plfm_cp_contract_samples PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/test)

plfm_add_test(control_plane_contract_docs_test
  SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/test/contract_docs_test.cc
  DEPS plfm_cp_schema_support plfm_cp_contract_samples yaml-cpp plfm_core valijson
  LABELS unit)
target_include_directories(control_plane_contract_docs_test
  PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/test)

# The event structs (libs/events) against the event schemas and samples.
plfm_add_test(control_plane_events_contract_test
  SOURCES
    ${CMAKE_CURRENT_SOURCE_DIR}/test/events_contract_test.cc
  DEPS plfm_cp_schema_support plfm_cp_contract_samples yaml-cpp plfm_core plfm_events valijson
  LABELS unit)
target_include_directories(control_plane_events_contract_test
  PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/test)
