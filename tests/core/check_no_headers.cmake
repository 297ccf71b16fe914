# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
# cmake -DCXX=… [-DFLAGS=…] -DINCLUDE=… -DSOURCE=… -P check_no_headers.cmake
# Compiles SOURCE with -H (which lists every header parsed) and fails if one of them is under
# nlohmann/ or fmt/: the core with the in-memory store and a codec of one's own needs neither.
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
execute_process(COMMAND "${CXX}" ${flags} -std=c++20 -fsyntax-only -H -I${INCLUDE} "${SOURCE}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} does not compile:\n${err}")
endif()
string(REGEX MATCHALL "[^\n]*(nlohmann|fmt)/[^\n]*" parsed "${err}")
if(parsed)
  list(JOIN parsed "\n" lines)
  message(FATAL_ERROR "${SOURCE} parses headers it must not (nlohmann/ or fmt/):\n${lines}")
endif()
string(REGEX MATCHALL "\n?\\.+ [^\n]*" headers "${err}")
list(LENGTH headers count)
message(STATUS "OK: ${count} headers parsed, none under nlohmann/ or fmt/")
