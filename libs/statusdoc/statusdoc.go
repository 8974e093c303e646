// Package statusdoc is the shape of the status document: what services/status serves at
// GET /status and what the operator CLI (cmd/spotrunner) reads, field for field as the README
// promises.
package statusdoc

// Document is the status document, field for field as the README promises.
type Document struct {
	Status         string         `json:"status"` // ready | building | degraded
	Configuration  Configuration  `json:"configuration"`
	GitHub         GitHub         `json:"github"`
	Presets        []Preset       `json:"presets"`
	Runners        Runners        `json:"runners"`
	RecentActivity RecentActivity `json:"recentActivity"`
	Message        string         `json:"message"`
	Warnings       []string       `json:"warnings,omitempty"` // plain sentences: what is wrong and what to do
}

// Configuration says whether the stack's secrets are in place.
type Configuration struct {
	PrivateKeyConfigured bool `json:"privateKeyConfigured"`
}

// GitHub is the result of an authenticated call as the App.
type GitHub struct {
	Status  string  `json:"status"` // connected | error
	Message string  `json:"message"`
	AppSlug *string `json:"appSlug"` // null when GitHub did not say
}

// Preset is one preset's image status.
type Preset struct {
	Name      string  `json:"name"`
	Status    string  `json:"status"` // ready | building | failed
	AMIID     *string `json:"amiId"`  // null until a first AMI exists
	UpdatedAt *string `json:"updatedAt"`
}

// Runners counts jobs and runners by where they are.
type Runners struct {
	Pending      int `json:"pending"`      // jobs waiting for an instance
	Provisioning int `json:"provisioning"` // instances launched whose runner has not taken a job
	Running      int `json:"running"`      // runners busy with a job
}

// RecentActivity counts finished jobs.
type RecentActivity struct {
	LastHour    Activity `json:"lastHour"`
	Last24Hours Activity `json:"last24Hours"`
}

// Activity is a count of finished jobs.
type Activity struct {
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
}
