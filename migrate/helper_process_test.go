package migrate_test

func helperMain() int { return 0 }
