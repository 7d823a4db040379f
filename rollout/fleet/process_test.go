package fleet_test

func instanceMain() int { return 0 }
