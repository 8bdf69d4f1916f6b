# Renames every code section (.text and .text.*) of the static library LIB
# to tel_text, in place, so that all of Telar's code (the private jemalloc
# object included) lands in one output section whose bounds the linker
# gives as __start_tel_text / __stop_tel_text (sched/preempt.c). Fails if a
# code section is left.
# Inputs: OBJCOPY, READELF, LIB.
execute_process(COMMAND "${READELF}" -SW "${LIB}" OUTPUT_VARIABLE out
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "readelf -S ${LIB} failed")
endif()
string(REGEX MATCHALL "[ \t]\\.text(\\.[A-Za-z0-9_.$]*)?[ \t]" found "${out}")
set(names "")
foreach(n IN LISTS found)
  string(STRIP "${n}" n)
  list(APPEND names "${n}")
endforeach()
list(REMOVE_DUPLICATES names)
set(args "")
foreach(n IN LISTS names)
  list(APPEND args "--rename-section" "${n}=tel_text")
endforeach()
if(args)
  execute_process(COMMAND "${OBJCOPY}" ${args} "${LIB}" RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "objcopy --rename-section on ${LIB} failed")
  endif()
endif()
execute_process(COMMAND "${READELF}" -SW "${LIB}" OUTPUT_VARIABLE out)
if(out MATCHES "[ \t]\\.text")
  message(FATAL_ERROR "a code section of ${LIB} was not renamed")
endif()
