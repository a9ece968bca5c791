package report

import "github.com/servq/servq/config"

// Source types by what they deliver. demo simulates everything; sql,
// http_json and exec deliver whatever their mapping or command says,
// which the report cannot tell from the config.
var (
	surveySources    = map[string]bool{"survey_csv": true, "survey_webhook": true, "demo": true}
	telephonySources = map[string]bool{"asterisk_cdr": true, "asterisk_queue_log": true, "twilio_taskrouter": true, "demo": true}
	genericSources   = map[string]bool{"sql": true, "http_json": true, "exec": true}
)

// sections says which optional parts of a report the config calls for:
// survey KPIs where it has a survey source, a CSAT SLO or a survey KPI
// target; call volumes where it has a telephony source, a call SLO or a
// call target. With a generic source (sql, http_json, exec) a part is
// shown when its period or the previous one has data.
type sections struct{ surveys, telephony, generic bool }

func sectionsOf(cfg *config.Config) sections {
	var s sections
	for _, c := range cfg.Collectors {
		s.surveys = s.surveys || surveySources[c.Type]
		s.telephony = s.telephony || telephonySources[c.Type]
		s.generic = s.generic || genericSources[c.Type]
	}
	for _, o := range cfg.SLOs {
		switch o.Indicator {
		case "csat":
			s.surveys = true
		case "call_service_level", "call_abandonment":
			s.telephony = true
		}
	}
	for _, t := range cfg.Targets {
		switch {
		case config.KPIs[t.KPI].Survey:
			s.surveys = true
		case t.KPI == "calls_waiting" || t.KPI == "longest_wait":
			s.telephony = true
		}
	}
	return s
}
