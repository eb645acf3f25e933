//! The model: components, takeovers, the pair's three-state chain, and
//! what each system's availability comes to.



/// Hours in the year the report counts (365 days).
pub const HOURS_PER_YEAR: f64 = 8760.0;

/// A director's failure classes: each a component in series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    Hardware,
    DaemonCrash,
    DaemonHang,
    ServiceLink,
    Card,
}

impl Failure {
    pub const ALL: [Failure; 5] = [
        Failure::Hardware,
        Failure::DaemonCrash,
        Failure::DaemonHang,
        Failure::ServiceLink,
        Failure::Card,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Failure::Hardware => "director hardware",
            Failure::DaemonCrash => "daemon crash",
            Failure::DaemonHang => "daemon hang",
            Failure::ServiceLink => "service link",
            Failure::Card => "card",
        }
    }

    /// The key of this class in the report's JSON.
    pub fn key(self) -> &'static str {
        match self {
            Failure::Hardware => "hardware",
            Failure::DaemonCrash => "daemon_crash",
            Failure::DaemonHang => "daemon_hang",
            Failure::ServiceLink => "service_link",
            Failure::Card => "card",
        }
    }

    /// The failover bench's failure that stands for this class (`crash`:
    /// daemon killed and both links down at once, as a dead machine), or
    /// none (cards: not in that bench).
    pub fn bench_failure(self) -> Option<&'static str> {
        match self {
            Failure::Hardware => Some("crash"),
            Failure::DaemonCrash => Some("kill9"),
            Failure::DaemonHang => Some("hang"),
            Failure::ServiceLink => Some("link_down"),
            Failure::Card => None,
        }
    }
}

/// One component's two-state chain, in hours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Component {
    pub mtbf_h: f64,
    pub mttr_h: f64,
}

impl Component {
    /// λ, per hour.
    pub fn lambda(&self) -> f64 {
        1.0 / self.mtbf_h
    }

    /// μ / (λ + μ), written as MTBF / (MTBF + MTTR) so that MTTR → 0 is
    /// well defined.
    pub fn availability(&self) -> f64 {
        self.mtbf_h / (self.mtbf_h + self.mttr_h)
    }
}

/// What a pair does when its active fails by one class.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Takeover {
    /// τ: the service outage of one takeover, ms.
    pub outage_ms: f64,
    /// c: the probability that the standby takes over.
    pub coverage: f64,
    /// k ≥ 1: takeovers per failure (a hung active that wakes and takes
    /// the role back costs a second one).
    pub takeovers_per_failure: f64,
}

/// A hot-standby pair: its takeovers by class and the calls it keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub name: String,
    /// Indexed as [`Failure::ALL`].
    pub takeover: [Takeover; 5],
    /// Fraction of the calls in progress that a failover loses.
    pub loss_fraction: f64,
}

/// Every parameter of the model but the pairs' own.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// One director's components, indexed as [`Failure::ALL`].
    pub director: [Component; 5],
    /// Listed for completeness: no outage on its own (see the module doc).
    pub heartbeat_link: Component,
    /// Common to every system (see the module doc).
    pub ivr: Component,
    /// Directors repaired at once when both are down (1 or 2).
    pub repair_crews: u32,
    pub call_rate_per_s: f64,
    pub call_s: f64,
    /// Fraction of the calls in progress a single director's failure cuts.
    pub single_loss_fraction: f64,
}

/// One system's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub system: String,
    pub availability: f64,
    pub downtime_s_per_year: f64,
    /// The part of the downtime spent in takeovers (Σ c k τ per failure).
    pub takeover_downtime_s_per_year: f64,
    pub established_calls_lost_per_year: f64,
    pub attempted_calls_lost_per_year: f64,
    /// Failovers (takeovers started) per year; 0 for a single director.
    pub failovers_per_year: f64,
    /// Outages that last until a repair, per year.
    pub outages_until_repair_per_year: f64,
    /// π₀ for a pair; 1 − A for a single director.
    pub p_none_up: f64,
}

impl Outcome {
    pub fn calls_lost_per_year(&self) -> f64 {
        self.established_calls_lost_per_year + self.attempted_calls_lost_per_year
    }

    /// −log₁₀(1 − A).
    pub fn nines(&self) -> f64 {
        -(1.0 - self.availability).log10()
    }
}

/// The pair's three-state chain solved in closed form: `[π₂, π₁, π₀]`
/// (both up, one up, none up) for node failure rate λ, repair rate μ and
/// `crews` repair crews (1 or 2; more repair no faster than 2).
pub fn pair_chain(lambda: f64, mu: f64, crews: u32) -> [f64; 3] {
    let rho = lambda / mu;
    let m = f64::from(crews.clamp(1, 2));
    let p2 = 1.0 / (1.0 + 2.0 * rho + 2.0 * rho * rho / m);
    [p2, 2.0 * rho * p2, 2.0 * rho * rho / m * p2]
}

impl Model {
    /// Calls in progress on average (Little's law).
    pub fn calls_in_progress(&self) -> f64 {
        self.call_rate_per_s * self.call_s
    }

    /// One director alone: A₁ = Π μ_i / (λ_i + μ_i).
    pub fn director_availability(&self) -> f64 {
        self.director.iter().map(Component::availability).product()
    }

    /// The equivalent two-state node of one director: (λ, μ) per hour,
    /// λ = Σ λ_i and μ such that μ / (λ + μ) = A₁.
    pub fn node_rates(&self) -> (f64, f64) {
        let lambda: f64 = self.director.iter().map(Component::lambda).sum();
        let a = self.director_availability();
        (lambda, lambda * a / (1.0 - a))
    }

    pub fn single(&self) -> Outcome {
        let a = self.director_availability();
        let lambda: f64 = self.director.iter().map(Component::lambda).sum();
        // Failures that start an outage happen while the director is up.
        let failures = HOURS_PER_YEAR * a * lambda;
        let downtime_s = (1.0 - a) * HOURS_PER_YEAR * 3600.0;
        Outcome {
            system: "single director".into(),
            availability: a,
            downtime_s_per_year: downtime_s,
            takeover_downtime_s_per_year: 0.0,
            established_calls_lost_per_year: failures
                * self.single_loss_fraction
                * self.calls_in_progress(),
            attempted_calls_lost_per_year: self.call_rate_per_s * downtime_s,
            failovers_per_year: 0.0,
            outages_until_repair_per_year: failures,
            p_none_up: 1.0 - a,
        }
    }

    /// U = π₀ + Σ_i π₂ λ_i (c_i k_i τ_i + (1 − c_i) r_i).
    pub fn pair(&self, p: &Pair) -> Outcome {
        let (lambda, mu) = self.node_rates();
        let [p2, p1, p0] = pair_chain(lambda, mu, self.repair_crews);
        let n = self.calls_in_progress();
        let mut u = p0;
        let mut failovers = 0.0;
        let mut uncovered = 0.0;
        let mut cut = 0.0;
        let mut in_takeovers_h = 0.0;
        for (c, t) in self.director.iter().zip(&p.takeover) {
            let rate = p2 * c.lambda(); // failures of the active, per hour
            let tau_h = t.outage_ms / 3.6e6;
            u += rate
                * (t.coverage * t.takeovers_per_failure * tau_h + (1.0 - t.coverage) * c.mttr_h);
            let per_year = rate * HOURS_PER_YEAR;
            in_takeovers_h += rate * t.coverage * t.takeovers_per_failure * tau_h;
            failovers += per_year * t.coverage * t.takeovers_per_failure;
            uncovered += per_year * (1.0 - t.coverage);
            cut += per_year
                * (t.coverage * t.takeovers_per_failure * p.loss_fraction + (1.0 - t.coverage))
                * n;
        }
        // The last director up fails: both down until a repair.
        let last = p1 * lambda * HOURS_PER_YEAR;
        cut += last * n;
        let downtime_s = u * HOURS_PER_YEAR * 3600.0;
        Outcome {
            system: p.name.clone(),
            availability: 1.0 - u,
            downtime_s_per_year: downtime_s,
            takeover_downtime_s_per_year: in_takeovers_h * HOURS_PER_YEAR * 3600.0,
            established_calls_lost_per_year: cut,
            attempted_calls_lost_per_year: self.call_rate_per_s * downtime_s,
            failovers_per_year: failovers,
            outages_until_repair_per_year: uncovered + last,
            p_none_up: p0,
        }
    }

    /// Calls cut by IVR failures per year, the same for every system: each
    /// of n IVRs fails 1/MTBF times an hour and holds N / n of the calls.
    pub fn ivr_calls_lost_per_year(&self) -> f64 {
        HOURS_PER_YEAR * self.ivr.lambda() * self.calls_in_progress()
    }
}

