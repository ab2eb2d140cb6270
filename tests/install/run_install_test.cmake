# Script mode: install, extract the README example, build it against the installed package, run it.
file(REMOVE_RECURSE ${PREFIX} ${CONSUMER_BUILD})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${RILL_BINARY_DIR} --prefix ${PREFIX}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed: ${rc}")
endif()

# The README's example is the block between <!-- example:begin --> and <!-- example:end -->.
file(READ ${README} readme)
string(REGEX MATCH "<!-- example:begin -->[^`]*```cpp\n(.*)```[^`]*<!-- example:end -->" _ "${readme}")
if(NOT CMAKE_MATCH_1)
  message(FATAL_ERROR "README.md has no example block between the example markers")
endif()
file(WRITE ${CONSUMER_BUILD}/src/readme_example.cpp "${CMAKE_MATCH_1}")

execute_process(COMMAND ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE} -B ${CONSUMER_BUILD}
                  -DCMAKE_PREFIX_PATH=${PREFIX} -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
                  -DEXAMPLE_SOURCE=${CONSUMER_BUILD}/src/readme_example.cpp
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "configuring the consumer project failed: ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${CONSUMER_BUILD} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the consumer project failed: ${rc}")
endif()
execute_process(COMMAND ${CONSUMER_BUILD}/readme_example RESULT_VARIABLE rc OUTPUT_VARIABLE out)
message(STATUS "readme_example printed:\n${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the README example exited with ${rc}")
endif()
