/* Unit tests of mem.c's arena: alignment, large allocations, reset and reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "topup/mem.h"

static void test_arena(void **state)
{
    (void)state;
    struct arena *a = arena_new(512);
    for (int round = 0; round < 3; round++) {
        for (int i = 1; i < 200; i++) {
            char *p = arena_alloc(a, (size_t)i);
            assert_int_equal((uintptr_t)p % _Alignof(max_align_t), 0);
            memset(p, 0xab, (size_t)i);
        }
        char *big = arena_alloc(a, 100000);
        memset(big, 1, 100000);
        assert_string_equal(arena_strdup(a, "张三"), "张三");
        assert_string_equal(arena_strndup(a, "abcdef", 3), "abc");
        arena_reset(a);
    }
    arena_free(a);
    arena_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_arena)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
