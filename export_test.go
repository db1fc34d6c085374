package sslsession

var (
	RawGet0     = rawGet0
	RawGet1Free = rawGet1Free
	CheckSetupF = checkSetup
)
