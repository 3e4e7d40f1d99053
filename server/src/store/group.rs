//! A replica's place in its volume's group as the catalogue decides it: the group and
//! epoch kept with the replica, and a replica leaving (rule 13). A replica that leaves
//! stops answering at once (its volume row goes) and its objects are deleted afterwards in
//! short transactions, so a large volume never holds one long write.

use super::codec::{self, VolumeRec};
use super::content;
use super::{R, Store, StoreError, tables};
use codetta_wire::message::ReplicaMember;
use codetta_wire::{FsError, ReplicaId, VolumeId};
use redb::ReadableTable;

type DepartedTable<'t> = redb::Table<'t, (u32, u64), &'static [u8]>;

/// Notes the members of `old` (but this replica, `me`) that are not in `new` as departed
/// (`tables::DEPARTED`), and those of `listed` (the catalogue's departed list: replicas
/// that came and went between two groups this one saw), and forgets departed replicas whose
/// server is in `new` again. Its
/// old replica may still be there, handing over (a server's store holds one replica per
/// volume, so the new one is made only after the purge), but collection reaches that server
/// as a member now: `forget` names the volume, not the replica, so the server answers from
/// whichever replica it holds (live there: the tombstone waits), or `UnknownVolume`
/// (counted as unreachable).
fn note_departures(
    departed: &mut DepartedTable<'_>,
    volume: VolumeId,
    me: ReplicaId,
    old: &[ReplicaMember],
    new: &[ReplicaMember],
    listed: &[ReplicaMember],
) -> R<()> {
    for gone in old
        .iter()
        .chain(listed)
        .filter(|m| m.replica != me && !new.iter().any(|n| n.replica == m.replica))
    {
        departed.insert(
            (volume.0, gone.replica.0),
            codec::encode(&gone.server)?.as_slice(),
        )?;
    }
    drop_departed(departed, volume, |server| {
        new.iter().any(|m| m.server == server)
    })
}

/// Forgets `volume`'s departed replicas whose server `drop_if` picks.
fn drop_departed(
    departed: &mut DepartedTable<'_>,
    volume: VolumeId,
    drop_if: impl Fn(&str) -> bool,
) -> R<()> {
    let mut keys = Vec::new();
    for item in departed.range((volume.0, 0)..=(volume.0, u64::MAX))? {
        let (key, value) = item?;
        let server: String = codec::decode("departed", value.value())?;
        if drop_if(&server) {
            keys.push(key.value());
        }
    }
    for key in keys {
        departed.remove(key)?;
    }
    Ok(())
}

impl Store {
    /// Records the volume's group as of catalogue `epoch` (a newer epoch than the one
    /// kept; an older one changes nothing). `Ok(false)` when nothing changed.
    pub fn set_group(
        &self,
        volume: VolumeId,
        vsg: &[ReplicaMember],
        epoch: u64,
    ) -> Result<bool, FsError> {
        self.set_group_knowing(volume, vsg, epoch, &[])
    }

    /// [`Store::set_group`] with the catalogue's departed list for the volume: a replica
    /// added and removed between two groups this replica saw is noted as departed too
    /// (one this server forgot already is asked once more by the next collection).
    pub fn set_group_knowing(
        &self,
        volume: VolumeId,
        vsg: &[ReplicaMember],
        epoch: u64,
        departed: &[ReplicaMember],
    ) -> Result<bool, FsError> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let changed = (|| -> R<bool> {
            let mut volumes = txn.open_table(tables::VOLUMES)?;
            let mut rec: VolumeRec = match volumes.get(volume.0)? {
                Some(g) => codec::decode("volumes", g.value())?,
                None => return Err(FsError::UnknownVolume.into()),
            };
            if epoch <= rec.epoch && rec.vsg == vsg {
                return Ok(false);
            }
            if epoch < rec.epoch {
                return Ok(false);
            }
            note_departures(
                &mut txn.open_table(tables::DEPARTED)?,
                volume,
                rec.replica,
                &rec.vsg,
                vsg,
                departed,
            )?;
            rec.vsg = vsg.to_vec();
            rec.epoch = epoch;
            volumes.insert(volume.0, codec::encode(&rec)?.as_slice())?;
            Ok(true)
        })()?;
        txn.commit().map_err(StoreError::from)?;
        Ok(changed)
    }

    /// Takes this server's replica of `volume` out of service: from now on it is an
    /// unknown volume here, and [`Store::purge_step`] deletes what it held.
    pub fn retire_replica(&self, volume: VolumeId) -> Result<(), FsError> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        (|| -> R<()> {
            let mut volumes = txn.open_table(tables::VOLUMES)?;
            let rec: Option<VolumeRec> = match volumes.remove(volume.0)? {
                Some(g) => Some(codec::decode("volumes", g.value())?),
                None => None,
            };
            if let Some(rec) = rec {
                txn.open_table(tables::VOLUME_NAMES)?
                    .remove(rec.name.as_str())?;
            }
            txn.open_table(tables::PURGING)?
                .insert(volume.0, [].as_slice())?;
            drop_departed(&mut txn.open_table(tables::DEPARTED)?, volume, |_| true)?;
            Ok(())
        })()?;
        txn.commit().map_err(StoreError::from)?;
        tracing::info!(volume = volume.0, "replica retired; deleting its objects");
        Ok(())
    }

    /// The replicas that left `volume`'s group while this one stayed and may still hold
    /// what they had (see `tables::DEPARTED`).
    pub fn departed(&self, volume: VolumeId) -> Result<Vec<ReplicaMember>, FsError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(tables::DEPARTED).map_err(StoreError::from)?;
        let mut out = Vec::new();
        for item in table
            .range((volume.0, 0)..=(volume.0, u64::MAX))
            .map_err(StoreError::from)?
        {
            let (key, value) = item.map_err(StoreError::from)?;
            out.push(ReplicaMember {
                replica: ReplicaId(key.value().1),
                server: codec::decode("departed", value.value())?,
            });
        }
        Ok(out)
    }

    /// Forgets a departed replica of `volume` (gone from its server, or its server gone
    /// from the cluster).
    pub fn forget_departed(&self, volume: VolumeId, replica: ReplicaId) -> Result<(), FsError> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        (|| -> R<()> {
            txn.open_table(tables::DEPARTED)?
                .remove((volume.0, replica.0))?;
            Ok(())
        })()?;
        txn.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Volumes retired here whose objects are still being deleted.
    pub fn purging(&self) -> Result<Vec<VolumeId>, FsError> {
        let txn = self.read_txn()?;
        let table = txn.open_table(tables::PURGING).map_err(StoreError::from)?;
        let mut out = Vec::new();
        for item in table.range::<u32>(..).map_err(StoreError::from)? {
            out.push(VolumeId(item.map_err(StoreError::from)?.0.value()));
        }
        Ok(out)
    }

    /// Deletes up to `max_objects` objects (with their blocks) of a retired volume, in
    /// one transaction; once none are left, the rest of its rows go too. `Ok(true)` while
    /// there is more to delete.
    pub fn purge_step(&self, volume: VolumeId, max_objects: usize) -> Result<bool, FsError> {
        let vol = volume.0;
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        let more = (|| -> R<bool> {
            if txn.open_table(tables::PURGING)?.get(vol)?.is_none() {
                return Ok(false);
            }
            if txn.open_table(tables::VOLUMES)?.get(vol)?.is_some() {
                // The volume was given back to this server before its old replica was
                // deleted: nothing to do until it leaves again.
                return Err(FsError::Exists.into());
            }
            let mut t = self.write_tables(&txn)?;
            let keys: Vec<u64> = t
                .vnodes
                .range((vol, 0)..=(vol, u64::MAX))?
                .take(max_objects)
                .map(|item| item.map(|(k, _)| k.value().1))
                .collect::<Result<_, _>>()?;
            for vnode in &keys {
                content::drop_blocks(&mut t.blocks, &mut t.chunks, (vol, *vnode), 0, None)?;
                t.vnodes.remove((vol, *vnode))?;
                t.vnode_count = t.vnode_count.saturating_sub(1);
            }
            let more = keys.len() == max_objects;
            if !more {
                t.dirents.retain_in(
                    (vol, 0, 0, [].as_slice())
                        ..=(vol, u64::MAX, u64::MAX, [0xffu8; 256].as_slice()),
                    |_, _| false,
                )?;
                t.tombstones
                    .retain_in((vol, 0)..=(vol, u64::MAX), |_, _| false)?;
                t.changes
                    .retain_in((vol, 0)..=(vol, u64::MAX), |_, _| false)?;
                t.conflicts
                    .retain_in((vol, 0)..=(vol, u64::MAX), |_, _| false)?;
                t.collected
                    .retain_in((vol, 0)..=(vol, u64::MAX), |_, _| false)?;
                t.installing
                    .retain_in((vol, 0)..=(vol, u64::MAX), |_, _| false)?;
                t.gc_queue
                    .retain_in((vol, 0, 0)..=(vol, u64::MAX, u64::MAX), |_, _| false)?;
                t.gc_floors
                    .retain_in((vol, 0)..=(vol, u32::MAX), |_, _| false)?;
                t.cop2
                    .retain_in((vol, 0, 0)..=(vol, u32::MAX, u64::MAX), |_, _| false)?;
                t.applied.retain(|k, _| k.1 != vol)?;
                t.gaps.retain(|k, _| k.1 != vol)?;
                txn.open_table(tables::PEER_CURSORS)?
                    .retain_in((vol, 0)..=(vol, u64::MAX), |_, _| false)?;
                txn.open_table(tables::PURGING)?.remove(vol)?;
            }
            t.save_counters()?;
            Ok(more)
        })();
        match more {
            Ok(more) => {
                txn.commit().map_err(StoreError::from)?;
                if !more {
                    tracing::info!(volume = vol, "retired replica deleted");
                }
                Ok(more)
            }
            Err(StoreError::Fs(FsError::Exists)) => {
                let _ = txn.abort();
                Ok(false)
            }
            Err(e) => {
                let _ = txn.abort();
                Err(e.into())
            }
        }
    }
}
