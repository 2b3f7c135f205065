# polytask_warnings: an interface target every polytask target links to get the project's
# warning set (and -Werror when POLYTASK_WARNINGS_AS_ERRORS is on, as in CI).
add_library(polytask_warnings INTERFACE)
target_compile_options(polytask_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion
                            -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
                            # options structs are meant for partial designated initialisers
                            -Wno-missing-field-initializers>)
if(POLYTASK_WARNINGS_AS_ERRORS)
  target_compile_options(polytask_warnings INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-Werror>
    $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
endif()
