//! Figures and their table.

use std::fmt;

/// One measured figure: a workload on a system.
#[derive(Debug, Clone)]
pub struct Figure {
    pub system: String,
    pub workload: String,
    pub value: f64,
    pub unit: &'static str,
}

/// Every figure of a run.
#[derive(Debug, Default)]
pub struct Report {
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn add(&mut self, system: &str, workload: &str, value: f64, unit: &'static str) {
        self.figures.push(Figure {
            system: system.to_string(),
            workload: workload.to_string(),
            value,
            unit,
        });
    }
}

impl fmt::Display for Report {
    /// A table: one row per workload, one column per system.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut systems: Vec<&str> = Vec::new();
        let mut workloads: Vec<(&str, &str)> = Vec::new();
        for fig in &self.figures {
            if !systems.contains(&fig.system.as_str()) {
                systems.push(&fig.system);
            }
            if !workloads.iter().any(|(w, _)| *w == fig.workload) {
                workloads.push((&fig.workload, fig.unit));
            }
        }
        write!(f, "{:<28}", "workload")?;
        for s in &systems {
            write!(f, "{s:>20}")?;
        }
        writeln!(f)?;
        for (workload, unit) in workloads {
            write!(f, "{:<28}", format!("{workload} ({unit})"))?;
            for s in &systems {
                match self
                    .figures
                    .iter()
                    .find(|x| x.system == *s && x.workload == workload)
                {
                    Some(x) => write!(f, "{:>20.1}", x.value)?,
                    None => write!(f, "{:>20}", "-")?,
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}
