# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
# cmake -DMODE=<fetch_content|add_subdirectory|find_package|pkg_config> -DSOURCE=<repo>
#       -DWORK=<dir> [-DCXX=<compiler>] -P run_consumer.cmake
# Configures, builds and runs one consumer project the way a user would (pkg_config: installs
# like find_package, then pkg_config/build.sh builds main.cpp with g++ and no CMake).
cmake_minimum_required(VERSION 3.23)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(common -G Ninja -DCMAKE_BUILD_TYPE=Release)
if(CXX)
  list(APPEND common -DCMAKE_CXX_COMPILER=${CXX})
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

set(extra)
if(MODE STREQUAL "fetch_content")
  # what a release archive holds: the files a consumer needs
  execute_process(COMMAND ${CMAKE_COMMAND} -E tar czf "${WORK}/idempotency.tar.gz"
                          CMakeLists.txt cmake include LICENSE
                  WORKING_DIRECTORY "${SOURCE}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "could not pack the archive")
  endif()
  list(APPEND extra "-DIDEMPOTENCY_ARCHIVE=file://${WORK}/idempotency.tar.gz"
       -DFETCHCONTENT_FULLY_DISCONNECTED=OFF)
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND extra "-DIDEMPOTENCY_SOURCE_DIR=${SOURCE}")
elseif(MODE STREQUAL "find_package" OR MODE STREQUAL "pkg_config")
  if(MODE STREQUAL "pkg_config")
    find_program(PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf)
    if(NOT PKG_CONFIG_EXECUTABLE)
      if(DEFINED ENV{IDEMPOTENCY_REQUIRE_SERVERS})
        message(FATAL_ERROR "pkg-config is required (IDEMPOTENCY_REQUIRE_SERVERS) but not found")
      endif()
      message("SKIPPED: no pkg-config (set IDEMPOTENCY_REQUIRE_SERVERS=1 to make this a failure)")
      return()
    endif()
  endif()
  run(${CMAKE_COMMAND} -S "${SOURCE}" -B "${WORK}/lib" ${common} -DIDEMPOTENCY_BUILD_TESTS=OFF
      -DIDEMPOTENCY_BUILD_EXAMPLES=OFF -DIDEMPOTENCY_BUILD_BENCH=OFF -DIDEMPOTENCY_INSTALL=ON)
  run(${CMAKE_COMMAND} --install "${WORK}/lib" --prefix "${WORK}/prefix")
  list(APPEND extra "-DCMAKE_PREFIX_PATH=${WORK}/prefix")
  if(MODE STREQUAL "pkg_config")
    run(bash "${SOURCE}/tests/consumers/pkg_config/build.sh" "${WORK}/prefix" "${WORK}"
        "${SOURCE}/tests/consumers/main.cpp")
    return()
  endif()
else()
  message(FATAL_ERROR "unknown MODE '${MODE}'")
endif()

run(${CMAKE_COMMAND} -S "${SOURCE}/tests/consumers/${MODE}" -B "${WORK}/build" ${common} ${extra})
run(${CMAKE_COMMAND} --build "${WORK}/build")
run("${WORK}/build/consumer")
