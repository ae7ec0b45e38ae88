package report

// HumanDuration exposes humanDuration to the tests.
var HumanDuration = humanDuration
