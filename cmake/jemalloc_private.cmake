# Turns Debian's libjemalloc_pic.a into one relocatable object whose only
# global symbols are tel__je_mallocx, tel__je_sdallocx, tel__je_mallctl (and
# a few siblings): linked into libtelar, it never replaces the embedding
# program's malloc, and no C++ runtime is needed (jemalloc_cpp is left out).
# Inputs: AR, LD, OBJCOPY, IN (the archive), OUT (the object), WORK (a dir).
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
execute_process(COMMAND "${AR}" x "${IN}" WORKING_DIRECTORY "${WORK}"
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "ar x ${IN} failed")
endif()
file(GLOB objs "${WORK}/*.o")
list(FILTER objs EXCLUDE REGEX "jemalloc_cpp")
execute_process(COMMAND "${LD}" -r ${objs} -o "${WORK}/all.o" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "ld -r failed")
endif()
set(keep mallocx dallocx sdallocx nallocx rallocx mallctl mallctlbymib mallctlnametomib)
set(map "")
set(keepargs "")
foreach(s IN LISTS keep)
  string(APPEND map "${s} tel__je_${s}\n")
  list(APPEND keepargs "--keep-global-symbol=tel__je_${s}")
endforeach()
file(WRITE "${WORK}/map" "${map}")
execute_process(COMMAND "${OBJCOPY}" --localize-hidden --redefine-syms=${WORK}/map
                        "${WORK}/all.o" "${WORK}/renamed.o" RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "objcopy (rename) failed")
endif()
execute_process(COMMAND "${OBJCOPY}" ${keepargs} "${WORK}/renamed.o" "${OUT}"
                RESULT_VARIABLE rc)
if(rc)
  message(FATAL_ERROR "objcopy (localize) failed")
endif()
