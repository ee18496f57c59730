package record

import "syscall"

const oDirect = syscall.O_DIRECT
