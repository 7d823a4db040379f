package rollout_test

const childEnv = "BATON_ROLLOUT_TEST_CHILD"

func childMain() int { return 0 }
