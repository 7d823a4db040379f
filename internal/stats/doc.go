// Package stats holds the statistics that canary analysis uses to compare
// a canary with its stable baseline: exact one-sided tests of two
// proportions and of two event rates, normal tail functions for the
// large-sample tests, and alpha-spending schedules that bound the
// false-alarm rate of checks repeated during one rollout.
//
// Everything here is a pure function of counts: no clock, no goroutines, no
// allocation beyond what the caller passes in.
//
// # Choices
//
//   - Error rates are compared with the exact conditional test of two
//     proportions (one-sided Fisher test): canary errors are hypergeometric
//     given the total number of errors, so the p-value stays valid with a
//     handful of errors, where the pooled z-test is anti-conservative (with
//     0.6 expected canary errors it overstates significance about tenfold).
//     ProportionZ is kept for reporting an effect size. Measured (seeded,
//     TestProportionGreaterSize): 600 against 11,400 trials at a common
//     0.1% rate, level 1%: the exact test rejects 0.43%, the z-test 3.1%.
//   - Rates with a tolerated ratio (the share of requests above a latency
//     cut may rise by a margin) are compared with the exact binomial test
//     of the first group's share of the events given their total
//     (BinomialGreater), the conditional test of two Poisson rates.
//   - Repeated looks are bounded by alpha spending: look k spends the
//     increment of the spending function, so the chance of any false
//     rejection over all looks is at most the total alpha. Tested at the
//     increment itself (the union bound) that holds whatever the
//     correlation between looks; for looks at a growing sample of a
//     statistic with independent normal increments, Sequential computes
//     the group-sequential boundary that spends exactly the increment, a
//     higher nominal level because the looks are correlated.
package stats
