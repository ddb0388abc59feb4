// SPDX-License-Identifier: GPL-2.0

//! Typed bit sets for TLFS registers: a newtype over the raw integer with one
//! named constant per defined bit and the names in a table, so that logs and
//! debugfs print names and a value from the other side with unknown bits is
//! still just data.

/// Declares a bit set newtype.
///
/// ```text
/// hv_bits! {
///     /// Doc.
///     pub struct Name(u32) {
///         /// Doc.
///         FOO = 0,
///     }
/// }
/// ```
///
/// The generated type has the constants, `NAMED` (bit, name) pairs in bit
/// order, `bits()`, `from_bits_retain()`, `contains()`, `union()`,
/// `difference()`, `unknown_bits()`, `names()`, and `Display` as
/// `0x<hex> NAME NAME ...` (unknown bits as `+0x<hex>`).
macro_rules! hv_bits {
    (
        $(#[$outer:meta])*
        pub struct $name:ident($ty:ty) {
            $(
                $(#[$inner:meta])*
                $flag:ident = $bit:literal,
            )*
        }
    ) => {
        $(#[$outer])*
        #[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
        #[repr(transparent)]
        pub struct $name(pub $ty);

        impl $name {
            $(
                $(#[$inner])*
                pub const $flag: Self = Self(1 << $bit);
            )*

            /// Every defined bit with its TLFS name, in bit order.
            pub const NAMED: &'static [(Self, &'static str)] = &[$((Self::$flag, stringify!($flag)),)*];

            /// The union of every defined bit.
            pub const ALL: Self = Self(0 $(| (1 << $bit))*);

            /// The empty set.
            pub const fn empty() -> Self {
                Self(0)
            }

            /// The raw register value.
            pub const fn bits(self) -> $ty {
                self.0
            }

            /// Wraps a raw value, keeping bits this side does not know.
            pub const fn from_bits_retain(bits: $ty) -> Self {
                Self(bits)
            }

            /// Whether every bit of `other` is set in `self`.
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// Bits set in either.
            #[must_use]
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// Bits of `self` that are not in `other`.
            #[must_use]
            pub const fn difference(self, other: Self) -> Self {
                Self(self.0 & !other.0)
            }

            /// Whether no bit is set.
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// Set bits that have no name on this side.
            pub const fn unknown_bits(self) -> $ty {
                self.0 & !Self::ALL.0
            }

            /// Names of the defined bits that are set, in bit order.
            pub fn names(self) -> impl Iterator<Item = &'static str> {
                Self::NAMED
                    .iter()
                    .filter(move |(flag, _)| self.contains(*flag))
                    .map(|(_, name)| *name)
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{:#x}", self.0)?;
                for name in self.names() {
                    write!(f, " {}", name)?;
                }
                if self.unknown_bits() != 0 {
                    write!(f, " +{:#x}", self.unknown_bits())?;
                }
                Ok(())
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }
    };
}

pub(crate) use hv_bits;

#[cfg(test)]
#[allow(dead_code)]
mod tests {
    hv_bits! {
        /// Test set.
        pub struct T(u32) {
            /// Bit zero.
            A = 0,
            /// Bit five.
            B = 5,
        }
    }

    #[test]
    fn display_names_known_and_unknown_bits() {
        assert_eq!(T(0).to_string(), "0x0");
        assert_eq!(T(0x21).to_string(), "0x21 A B");
        assert_eq!(T(0x8000_0001).to_string(), "0x80000001 A +0x80000000");
    }

    #[test]
    fn set_operations() {
        let ab = T::A.union(T::B);
        assert!(ab.contains(T::A) && ab.contains(T::B));
        assert_eq!(ab.difference(T::A), T::B);
        assert_eq!(T::ALL, ab);
        assert_eq!(T(0xff).unknown_bits(), 0xde);
        assert!(T::empty().is_empty());
        assert_eq!(T::NAMED.len(), 2);
    }
}
